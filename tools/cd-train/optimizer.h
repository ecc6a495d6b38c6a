// Adam over the parameters a training mode trains (all of them, the head
// alone, or backbone and head at two rates), one BCE-with-logits step with a
// divergence check, and the optimizer's state in and out of checkpoints.
#pragma once

#include <memory>
#include <string>

#include "cd-train/train.h"
#include "nn/nets.h"

namespace torch::optim {
class Adam;
}

namespace cd {

class Group;

class Optimizer {
 public:
  Optimizer(NetworkImpl& net, const TrainParams& params);
  ~Optimizer();

  // The scheduled learning rate; with two groups (finetune) the backbone's
  // is lr * backbone_lr_factor.
  void set_lr(double lr);
  double lr() const { return m_lr; }
  // Applies a fraction of the scheduled rate (warm-up) without changing it.
  void warm_up(double fraction);

  // Data-parallel training: every step's gradients are summed over the group,
  // each rank's weighted by its share of the global batch.
  void set_group(Group* group) { m_group = group; }

  // BCE-with-logits loss, backward, update; returns the loss. `share` is this
  // rank's rows over the global batch's (1 in a single process).
  // Throws DivergedError naming the epoch and batch on a non-finite loss.
  double step(const at::Tensor& logits, const at::Tensor& y, int epoch, std::size_t batch,
              double share = 1.0);
  // A global step in which this rank has no rows: it still takes part in the
  // gradient sum, with zeros, so every rank stays in step.
  void step_without_rows();
  void zero_grad();

  std::string save() const;
  // Throws ModelError naming origin when the state does not fit.
  void load(const std::string& blob, const std::string& origin);

 private:
  void apply(double lr);
  void sync_gradients(double share);

  std::unique_ptr<torch::optim::Adam> m_adam;
  double m_lr = 0;
  double m_backbone_factor = 1;
  // Fault injection for the end-to-end tests: CD_FAULT_NAN_AT_STEP=N poisons step N's loss.
  long m_fault_nan_step = 0;
  long m_steps = 0;
  Group* m_group = nullptr;
};

}  // namespace cd
