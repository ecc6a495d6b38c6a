// Adam as the trainer drives it (optimizer.cpp): a step that learns, a
// diverged step that names where, and its state through a checkpoint blob.
#include "catch_torch.h"

#include <limits>
#include <string>

#include "cd-train/optimizer.h"
#include "cd-train/train.h"
#include "nn/nets.h"
#include "util/errors.h"

namespace {

cd::TrainParams compact_params() {
  cd::TrainParams p;
  p.architecture = "compact";
  p.input_size = 32;
  p.mode = cd::TrainMode::k_full;
  return p;
}

// One fixed batch: 8 images, half labelled dog.
struct Batch {
  at::Tensor x = at::randn({8, 3, 32, 32});
  at::Tensor y = at::cat({at::zeros({4, 1}), at::ones({4, 1})});
};

double step_on(cd::NetworkImpl& net, cd::Optimizer& opt, const Batch& b, int epoch = 1) {
  opt.zero_grad();
  return opt.step(net.forward(b.x), b.y, epoch, 0);
}

}  // namespace

TEST_CASE("optimizer: steps on one batch drive its loss down", "[optimizer]") {
  at::manual_seed(3);
  cd::TrainParams p = compact_params();
  cd::Network net = cd::build_network(p.architecture, p.input_size);
  net->train();
  cd::Optimizer opt(*net, p);
  opt.set_lr(1e-3);
  CHECK(opt.lr() == 1e-3);
  Batch b;
  double first = step_on(*net, opt, b);
  double last = first;
  for (int i = 0; i < 15; ++i) last = step_on(*net, opt, b);
  CHECK(last < 0.5 * first);
}

TEST_CASE("optimizer: a non-finite loss is a DivergedError naming the epoch and batch",
          "[optimizer]") {
  cd::TrainParams p = compact_params();
  cd::Network net = cd::build_network(p.architecture, p.input_size);
  cd::Optimizer opt(*net, p);
  opt.set_lr(1e-3);
  at::Tensor logits = at::full({2, 1}, std::numeric_limits<float>::quiet_NaN());
  logits.requires_grad_(true);
  CHECK_THROWS_AS(opt.step(logits, at::ones({2, 1}), 7, 12), cd::DivergedError);
  CHECK_THROWS_WITH(
      opt.step(logits, at::ones({2, 1}), 7, 12),
      Catch::Contains("at epoch 7, batch 12") && Catch::Contains("lower optimizer.lr"));
}

TEST_CASE("optimizer: its state goes into a blob and comes back to take the same step",
          "[optimizer]") {
  at::manual_seed(5);
  cd::TrainParams p = compact_params();
  cd::Network a = cd::build_network(p.architecture, p.input_size);
  cd::Network b = cd::build_network(p.architecture, p.input_size);
  {
    torch::NoGradGuard no_grad;
    auto pa = a->parameters(), pb = b->parameters();
    for (std::size_t i = 0; i < pa.size(); ++i) pb[i].copy_(pa[i]);
  }
  a->eval();  // no batch-norm statistics moving: only the optimizer differs
  b->eval();
  cd::Optimizer opt_a(*a, p), opt_b(*b, p);
  opt_a.set_lr(1e-3);
  opt_b.set_lr(1e-3);
  Batch batch;
  for (int i = 0; i < 3; ++i) step_on(*a, opt_a, batch);
  // b gets a's weights and a's Adam moments; both then take the same step.
  {
    torch::NoGradGuard no_grad;
    auto pa = a->parameters(), pb = b->parameters();
    for (std::size_t i = 0; i < pa.size(); ++i) pb[i].copy_(pa[i]);
  }
  opt_b.load(opt_a.save(), "checkpoint.cdm");
  double la = step_on(*a, opt_a, batch), lb = step_on(*b, opt_b, batch);
  CHECK(la == Approx(lb).epsilon(1e-6));
  auto pa = a->parameters(), pb = b->parameters();
  for (std::size_t i = 0; i < pa.size(); ++i) CHECK(at::allclose(pa[i], pb[i], 1e-6, 1e-6));
  CHECK_THROWS_AS(opt_b.load("not an optimizer state", "bad.cdm"), cd::ModelError);
}
