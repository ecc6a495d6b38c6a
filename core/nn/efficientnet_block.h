// EfficientNet-Lite's parts (efficientnet.cpp builds the network from them):
// convs with TensorFlow "SAME" padding, BN with its epsilon, ReLU6, and the
// MBConv block (1x1 expand, depthwise kxk, 1x1 project, residual when the
// shape allows), each with its ONNX graph for cd-export.
#pragma once

#include <ATen/core/Tensor.h>
#include <torch/nn/module.h>
#include <torch/nn/modules/batchnorm.h>
#include <torch/nn/modules/conv.h>
#include <torch/nn/pimpl.h>

#include <cstdint>
#include <string>

#include "nn/graph.h"
#include "nn/onednn_lite.h"

namespace cd::lite {

struct BlockSpec {
  int in = 0, out = 0, expand = 1, kernel = 3, stride = 1;
};

torch::nn::Conv2d make_conv(int in, int out, int kernel, int stride, int groups = 1);
torch::nn::BatchNorm2d make_bn(int channels, double eps);

// ReLU6, in place.
at::Tensor clip6(at::Tensor x);
std::string clip6(GraphBuilder& g, const std::string& x);

// A folded conv as the oneDNN engine takes it.
onednn::LiteConv lite_conv(const torch::nn::Conv2d& conv, bool clip6);

// A conv with TF "SAME" padding, then its batch norm unless folded into it.
at::Tensor conv_bn(torch::nn::Conv2d& conv, torch::nn::BatchNorm2d& bn, bool folded,
                   const at::Tensor& x);
// conv_bn's graph, folded. n is the side going in and coming out.
std::string conv_graph(GraphBuilder& g, torch::nn::Conv2d& conv, const std::string& x,
                       std::int64_t& n);

class MBConvImpl : public torch::nn::Module {
 public:
  MBConvImpl(const BlockSpec& s, double eps);
  at::Tensor forward(const at::Tensor& x);
  std::string describe(GraphBuilder& g, const std::string& x, std::int64_t& n);
  // Batch norm into the convs, for inference.
  void fold();
  // Multiply-adds x 2 for an input of side n; returns the output side.
  double flops(std::int64_t& n) const;
  // The folded convs, for the oneDNN engine; fold() first.
  onednn::LiteBlock folded() const;
  const BlockSpec& spec() const { return m_spec; }

 private:
  BlockSpec m_spec;
  bool m_folded = false;
  torch::nn::Conv2d m_expand{nullptr}, m_depthwise{nullptr}, m_project{nullptr};
  torch::nn::BatchNorm2d m_bn0{nullptr}, m_bn1{nullptr}, m_bn2{nullptr};
};
TORCH_MODULE(MBConv);

}  // namespace cd::lite
