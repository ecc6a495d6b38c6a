// How one epoch trains and how validation is measured, by training mode:
//   image_strategy.cpp:  full and finetune, every batch through the whole
//                        network, augmented on loader threads;
//   frozen_strategy.cpp: frozen, the backbone's features computed once and
//                        the head trained on them alone.
// The loop in trainer.cpp sees only this interface.
#pragma once

#include <ATen/Tensor.h>
#include <c10/core/Device.h>

#include <memory>
#include <string>

#include "cd-train/distributed.h"
#include "cd-train/loader.h"
#include "cd-train/optimizer.h"
#include "cd-train/train.h"
#include "domain/model_file.h"
#include "nn/nets.h"

namespace cd {

struct Evaluation {
  double loss = 0, acc = 0;
  double p_dog_mean = 0;  // mean sigmoid output: the prediction mix cd-serve watches for drift
};

// Running loss and accuracy over an epoch's batches.
struct Tally {
  double loss_sum = 0, correct = 0, p_dog_sum = 0, seen = 0;
  void add(double batch_loss, const at::Tensor& logits, const at::Tensor& y);
  double loss() const { return loss_sum / seen; }
  double accuracy() const { return correct / seen; }
  Evaluation result() const { return {loss(), accuracy(), p_dog_sum / seen}; }
  // The same sums over every rank of a data-parallel group.
  Tally over_ranks(Group& group) const;
};

// What a strategy works on; owned by the trainer, outliving the strategy.
struct TrainContext {
  const TrainParams& params;
  NetworkImpl& net;
  Optimizer& optimizer;
  c10::Device device;
  const ImageCache& train;
  const ImageCache& val;
  Normalization norm;
  Group& group;           // a group of one in a single process
  const ModelMeta& meta;  // architecture and topology, for folded_copy()
};

class TrainStrategy {
 public:
  virtual ~TrainStrategy() = default;
  // Runs once before the first epoch (the frozen strategy extracts features).
  virtual void prepare() {}
  virtual Evaluation train_epoch(int epoch) = 0;
  virtual Evaluation evaluate() = 0;
  // The weights a model file gets: a network that takes raw images.
  virtual std::string model_weights() = 0;
  // Training rows seen so far (images, or cached feature rows), for img/s.
  double rows_seen() const { return m_rows_seen; }

 protected:
  double m_rows_seen = 0;
};

std::unique_ptr<TrainStrategy> make_strategy(const TrainContext& context);
std::unique_ptr<TrainStrategy> make_image_strategy(const TrainContext& context);
std::unique_ptr<TrainStrategy> make_frozen_strategy(const TrainContext& context);

}  // namespace cd
