// fold.cpp: batch norm folded into the convolution before it, one conv or a
// whole Sequential, and cd::conv2d, which keeps a 1x1 convolution on oneDNN.
#include "catch_torch.h"

#include <ATen/Parallel.h>

#include <string>
#include <vector>

#include <torch/nn/modules/activation.h>
#include <torch/nn/modules/pooling.h>

#include "nn/fold.h"
#include "op_log.h"

namespace {

using cd::test::OpLog;

class OneThread {
 public:
  OneThread() : m_before(at::get_num_threads()) { at::set_num_threads(1); }
  ~OneThread() { at::set_num_threads(m_before); }
  OneThread(const OneThread&) = delete;
  OneThread& operator=(const OneThread&) = delete;

 private:
  int m_before;
};

// The same 1x1 convolution as a matrix product: rows are positions.
at::Tensor pointwise_reference(const at::Tensor& x, const at::Tensor& w, const at::Tensor& b) {
  auto n = x.size(0), h = x.size(2), s = x.size(3);
  at::Tensor rows = x.permute({0, 2, 3, 1}).reshape({n * h * s, x.size(1)});
  at::Tensor out = at::addmm(b, rows, w.flatten(1).t());
  return out.view({n, h, s, w.size(0)}).permute({0, 3, 1, 2});
}

}  // namespace

TEST_CASE("on one thread, a 1x1 convolution at batch 1 runs oneDNN with at::conv2d's sums",
          "[fold]") {
  if (!at::hasMKLDNN()) {
    WARN("skipped: this LibTorch has no oneDNN");
    return;
  }
  OneThread one_thread;
  at::manual_seed(3);
  at::Tensor x = at::randn({1, 24, 19, 19}), w = at::randn({40, 24, 1, 1}), b = at::randn({40});
  at::Tensor expected = pointwise_reference(x, w, b);
  for (auto format : {at::MemoryFormat::Contiguous, at::MemoryFormat::ChannelsLast}) {
    INFO("channels-last: " << (format == at::MemoryFormat::ChannelsLast));
    c10::InferenceMode inference;
    OpLog log;
    at::Tensor y =
        cd::conv2d(x.contiguous(format), w.contiguous(format), b, {1, 1}, {0, 0}, {1, 1}, 1);
    CHECK(log.ran("aten::mkldnn_convolution"));  // LibTorch's own choice is its im2col path
    CHECK(y.sizes() == expected.sizes());
    CHECK((y - expected).abs().max().item<double>() < 1e-4);
  }
}

TEST_CASE("cd::conv2d leaves training, strides and larger batches to at::conv2d", "[fold]") {
  OneThread one_thread;
  at::manual_seed(4);
  at::Tensor w = at::randn({8, 6, 1, 1}).requires_grad_(), b = at::zeros({8});
  at::Tensor x = at::randn({1, 6, 9, 9});
  {
    OpLog log;
    at::Tensor y = cd::conv2d(x, w, b, {1, 1}, {0, 0}, {1, 1}, 1);
    CHECK_FALSE(log.ran("aten::mkldnn_convolution"));
    y.sum().backward();
    REQUIRE(w.grad().defined());
    CHECK(w.grad().abs().sum().item<double>() > 0);
  }
  c10::InferenceMode inference;
  OpLog log;
  at::Tensor strided = cd::conv2d(x, w.detach(), b, {2, 2}, {0, 0}, {1, 1}, 1);
  CHECK(strided.sizes() == at::IntArrayRef({1, 8, 5, 5}));
  at::Tensor batch = cd::conv2d(at::randn({16, 6, 9, 9}), w.detach(), b, {1, 1}, {0, 0}, {1, 1}, 1);
  CHECK(batch.size(0) == 16);
  CHECK(log.count("aten::conv2d") == 2);
}

namespace {

// A batch norm with statistics and an affine part that are not the identity.
torch::nn::BatchNorm2d trained_bn(int channels) {
  torch::nn::BatchNorm2d bn(channels);
  torch::NoGradGuard no_grad;
  bn->running_mean.uniform_(-1, 1);
  bn->running_var.uniform_(0.5, 2);
  bn->weight.uniform_(0.5, 1.5);
  bn->bias.uniform_(-0.5, 0.5);
  bn->eval();
  return bn;
}

}  // namespace

TEST_CASE("fold: a conv with its batch norm folded in answers as the pair", "[fold]") {
  torch::NoGradGuard no_grad;
  for (bool bias : {false, true}) {
    INFO("conv bias " << bias);
    torch::nn::Conv2d conv(torch::nn::Conv2dOptions(4, 6, 3).stride(2).padding(1).bias(bias));
    torch::nn::BatchNorm2d bn = trained_bn(6);
    at::Tensor x = at::randn({2, 4, 9, 9});
    at::Tensor expected = bn->forward(conv->forward(x));
    torch::nn::Conv2d folded = cd::fold_batch_norm(*conv, *bn);
    CHECK(at::allclose(folded->forward(x), expected, 1e-5, 1e-5));
  }
}

TEST_CASE("fold: a Sequential's conv-bn pairs fold, and its other layers stay", "[fold]") {
  torch::NoGradGuard no_grad;
  torch::nn::Sequential seq(torch::nn::Conv2d(torch::nn::Conv2dOptions(3, 8, 3).padding(1)),
                            trained_bn(8), torch::nn::ReLU(),
                            torch::nn::Conv2d(torch::nn::Conv2dOptions(8, 4, 1)), trained_bn(4),
                            torch::nn::LeakyReLU(torch::nn::LeakyReLUOptions().negative_slope(0.1)),
                            torch::nn::MaxPool2d(2));
  seq->eval();
  at::Tensor x = at::randn({2, 3, 10, 10});
  at::Tensor expected = seq->forward(x.clone());
  torch::nn::Sequential fused = cd::fuse_conv_bn(seq);
  CHECK(fused->size() == 5);  // two convs, two activations, the pool: no batch norm left
  for (const auto& m : fused->children()) CHECK(m->as<torch::nn::BatchNorm2dImpl>() == nullptr);
  CHECK(at::allclose(fused->forward(x.clone()), expected, 1e-5, 1e-5));
  CHECK(at::allclose(seq->forward(x.clone()), expected));  // the original is left as it was
}
