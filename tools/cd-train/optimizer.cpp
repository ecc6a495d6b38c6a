#include "cd-train/optimizer.h"

#include <ATen/ATen.h>
#include <torch/optim/adam.h>
#include <torch/serialize/input-archive.h>
#include <torch/serialize/output-archive.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <sstream>

#include "cd-train/distributed.h"
#include "util/errors.h"

namespace cd {

namespace {

std::unique_ptr<torch::optim::AdamOptions> adam_options(double lr, double weight_decay) {
  return std::make_unique<torch::optim::AdamOptions>(
      torch::optim::AdamOptions(lr).weight_decay(weight_decay));
}

}  // namespace

Optimizer::Optimizer(NetworkImpl& net, const TrainParams& p)
    : m_lr(p.lr), m_backbone_factor(p.backbone_lr_factor) {
  const char* fault = std::getenv("CD_FAULT_NAN_AT_STEP");
  m_fault_nan_step = fault ? std::atol(fault) : 0;
  std::vector<at::Tensor> head = net.head_parameters();
  std::vector<torch::optim::OptimizerParamGroup> groups;
  if (p.mode == TrainMode::k_frozen) {
    groups.emplace_back(head, adam_options(p.lr, p.weight_decay));
  } else if (p.mode == TrainMode::k_finetune) {
    std::vector<at::Tensor> backbone;
    for (const auto& param : net.parameters()) {
      bool in_head = std::any_of(head.begin(), head.end(),
                                 [&](const at::Tensor& h) { return h.is_same(param); });
      if (!in_head && param.requires_grad()) backbone.push_back(param);  // frozen stages stay out
    }
    groups.emplace_back(backbone, adam_options(p.lr * p.backbone_lr_factor, p.weight_decay));
    groups.emplace_back(head, adam_options(p.lr, p.weight_decay));
  } else {
    groups.emplace_back(net.parameters(), adam_options(p.lr, p.weight_decay));
  }
  m_adam =
      std::make_unique<torch::optim::Adam>(std::move(groups), *adam_options(p.lr, p.weight_decay));
}

Optimizer::~Optimizer() = default;

void Optimizer::apply(double lr) {
  auto& groups = m_adam->param_groups();
  for (std::size_t g = 0; g < groups.size(); ++g) {
    double scale = groups.size() == 2 && g == 0 ? m_backbone_factor : 1.0;
    static_cast<torch::optim::AdamOptions&>(groups[g].options()).lr(lr * scale);
  }
}

void Optimizer::set_lr(double lr) {
  m_lr = lr;
  apply(lr);
}

void Optimizer::warm_up(double fraction) { apply(m_lr * fraction); }

void Optimizer::zero_grad() { m_adam->zero_grad(); }

double Optimizer::step(const at::Tensor& logits, const at::Tensor& y, int epoch, std::size_t batch,
                       double share) {
  at::Tensor loss = at::binary_cross_entropy_with_logits(logits, y);
  if (m_fault_nan_step > 0 && ++m_steps == m_fault_nan_step) loss = loss * NAN;
  double value = loss.item<double>();
  if (!std::isfinite(value))
    throw DivergedError("training diverged: the loss became " + std::to_string(value) +
                        " at epoch " + std::to_string(epoch) + ", batch " + std::to_string(batch) +
                        "; lower optimizer.lr (now " + std::to_string(m_lr) + ")");
  loss.backward();
  sync_gradients(share);
  m_adam->step();
  return value;
}

void Optimizer::step_without_rows() {
  m_adam->zero_grad();
  sync_gradients(0.0);
  m_adam->step();
}

// One flat all-reduce of every trained parameter's gradient per step.
void Optimizer::sync_gradients(double share) {
  if (!m_group || m_group->world() == 1) return;
  std::vector<at::Tensor> grads;
  for (auto& group : m_adam->param_groups())
    for (auto& param : group.params()) {
      if (!param.grad().defined()) param.mutable_grad() = at::zeros_like(param);
      grads.push_back(param.grad());
    }
  std::vector<at::Tensor> flat_parts;
  for (auto& g : grads) flat_parts.push_back(g.reshape({-1}).to(at::kCPU));
  at::Tensor flat = at::cat(flat_parts).mul_(share);
  m_group->allreduce_sum(flat);
  int64_t offset = 0;
  for (auto& g : grads) {
    g.copy_(flat.narrow(0, offset, g.numel()).view_as(g));
    offset += g.numel();
  }
}

std::string Optimizer::save() const {
  torch::serialize::OutputArchive archive;
  m_adam->save(archive);
  std::ostringstream out;
  archive.save_to(out);
  return out.str();
}

void Optimizer::load(const std::string& blob, const std::string& origin) {
  try {
    torch::serialize::InputArchive archive;
    std::istringstream in(blob);
    archive.load_from(in);
    m_adam->load(archive);
  } catch (const c10::Error&) {
    throw ModelError(origin +
                     ": optimizer state is corrupt; delete the checkpoint and train again");
  }
}

}  // namespace cd
