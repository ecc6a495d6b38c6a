#include "catch_torch.h"

#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

#include "lite0.h"
#include "nn/image_tensor.h"
#include "nn/onednn_lite.h"
#include "op_log.h"

using cd::test::imported_lite0;
using cd::test::OpLog;
using cd::test::reference_input;

namespace {

// The convolutions LibTorch ran (cd::conv2d sends each to one of these).
long aten_convolutions(const OpLog& log) {
  return log.count("aten::conv2d") + log.count("aten::mkldnn_convolution");
}

// Lite0 with the same random cat/dog head, folded for inference: through the
// engine, or (CATDOG_LITE_ENGINE=aten while it folds) through LibTorch's ops.
cd::Network folded_lite0(const std::string& features, bool engine) {
  cd::Network net = imported_lite0(features);
  torch::manual_seed(3);
  {
    torch::NoGradGuard no_grad;
    for (auto& p : net->head_parameters()) p.normal_(0.0, 0.05);  // imported, the head is zero
  }
  if (!engine) setenv("CATDOG_LITE_ENGINE", "aten", 1);
  net->fuse_for_inference();
  unsetenv("CATDOG_LITE_ENGINE");
  cd::to_channels_last(*net);
  return net;
}

double max_difference(const at::Tensor& a, const at::Tensor& b) {
  return (a - b).abs().max().item<double>();
}

}  // namespace

TEST_CASE("the oneDNN engine gives LibTorch's answers without LibTorch's convolutions",
          "[efficientnet]") {
  if (!cd::onednn::lite_engine_available()) {
    WARN("this build has no oneDNN engine (libdnnl-dev absent, or an upstream LibTorch)");
    return;
  }
  torch::manual_seed(5);
  // Channels-last at the native side, a contiguous batch at odd sides (uneven
  // SAME padding on every stride-2 conv), then batch 1 again (a cached plan).
  const std::vector<at::Tensor> inputs{
      reference_input().contiguous(at::MemoryFormat::ChannelsLast),
      at::rand({3, 3, 97, 131}) * 2 - 1,
      reference_input().contiguous(at::MemoryFormat::ChannelsLast) * 0.5};
  for (std::string mode : {"pooled", "rich-max"}) {  // rich-max: two taps, mean and maximum
    INFO(mode);
    cd::Network engine = folded_lite0(mode, true), aten = folded_lite0(mode, false);
    c10::InferenceMode inference;
    for (const at::Tensor& x : inputs) {
      INFO("input " << x.sizes());
      OpLog ours;
      at::Tensor answer = engine->forward(x), features = engine->embed(x);
      CHECK(aten_convolutions(ours) == 0);
      CHECK_FALSE(ours.ran("aten::hardtanh_"));
      OpLog theirs;
      at::Tensor expected = aten->forward(x), expected_features = aten->embed(x);
      CHECK(aten_convolutions(theirs) > 50);
      REQUIRE(answer.sizes() == expected.sizes());
      CHECK(max_difference(answer, expected) < 1e-4);
      REQUIRE(features.sizes() == expected_features.sizes());
      CHECK(max_difference(features, expected_features) < 1e-3);
    }
  }
}

TEST_CASE("with gradients, or while another thread holds the engine, LibTorch's ops run",
          "[efficientnet]") {
  if (!cd::onednn::lite_engine_available()) {
    WARN("this build has no oneDNN engine (libdnnl-dev absent, or an upstream LibTorch)");
    return;
  }
  cd::Network net = folded_lite0("rich", true);
  at::Tensor x = reference_input().contiguous(at::MemoryFormat::ChannelsLast);
  at::Tensor expected;
  {
    c10::InferenceMode inference;
    expected = net->forward(x);
  }
  {
    OpLog log;
    at::Tensor x_grad = x.clone().requires_grad_();
    at::Tensor y = net->forward(x_grad);
    CHECK(aten_convolutions(log) > 50);
    CHECK(max_difference(y.detach(), expected) < 1e-4);
    y.sum().backward();  // the ATen path keeps the graph
    CHECK(x_grad.grad().abs().sum().item<double>() > 0);
  }
  // Four threads at once: each gets the same answer, from the engine or,
  // while it is busy, from ATen.
  std::vector<double> worst(4, 1.0);
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([&, t] {
      c10::InferenceMode inference;
      double w = 0;
      for (int i = 0; i < 5; ++i) w = std::max(w, max_difference(net->forward(x), expected));
      worst[t] = w;
    });
  for (auto& t : threads) t.join();
  for (double w : worst) CHECK(w < 1e-4);
}
