#include "nn/graph.h"

#include <ATen/ATen.h>
#include <torch/nn/modules/activation.h>
#include <torch/nn/modules/batchnorm.h>
#include <torch/nn/modules/container/sequential.h>
#include <torch/nn/modules/conv.h>
#include <torch/nn/modules/dropout.h>
#include <torch/nn/modules/linear.h>
#include <torch/nn/modules/pooling.h>
#include <torch/version.h>

#include "util/errors.h"

namespace cd {

namespace nn = torch::nn;

std::string GraphBuilder::add(const std::string& op, std::vector<std::string> inputs,
                              std::map<std::string, std::vector<std::int64_t>> ints,
                              std::map<std::string, float> floats) {
  GraphNode node{op, std::move(inputs), "t" + std::to_string(m_next++), std::move(ints),
                 std::move(floats)};
  graph.nodes.push_back(std::move(node));
  return graph.nodes.back().output;
}

std::string GraphBuilder::weight(const std::string& prefix, const at::Tensor& value) {
  // The same parameter described twice (both views of test-time flip) is one constant.
  auto known = m_named.find(value.unsafeGetTensorImpl());
  if (known != m_named.end()) return known->second.first;
  std::string name = prefix + std::to_string(graph.weights.size());
  at::Tensor t = value.detach().to(at::kCPU);
  if (t.is_floating_point()) t = t.to(at::kFloat);
  graph.weights.emplace_back(name, t.contiguous());
  m_named[value.unsafeGetTensorImpl()] = {name, value};
  return name;
}

std::string GraphBuilder::conv(const nn::Conv2dImpl& c, const std::string& x) {
  const auto& o = c.options;
  // LibTorch 2.1 moved its options from c10::variant to std::variant.
#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 1)
  const auto* pad = std::get_if<torch::ExpandingArray<2>>(&o.padding());
#else
  const auto* pad = c10::get_if<torch::ExpandingArray<2>>(&o.padding());
#endif
  if (!pad) throw UsageError("export: a conv with 'same' or 'valid' padding cannot be exported");
  return conv(c, x, {(*pad)->at(0), (*pad)->at(1), (*pad)->at(0), (*pad)->at(1)});
}

std::string GraphBuilder::conv(const nn::Conv2dImpl& c, const std::string& x,
                               const std::vector<std::int64_t>& pads) {
  const auto& o = c.options;
  std::vector<std::string> inputs{x, weight("w", c.weight)};
  if (c.bias.defined()) inputs.push_back(weight("b", c.bias));
  return add("Conv", inputs,
             {{"kernel_shape", {o.kernel_size()->at(0), o.kernel_size()->at(1)}},
              {"strides", {o.stride()->at(0), o.stride()->at(1)}},
              {"pads", pads},
              {"dilations", {o.dilation()->at(0), o.dilation()->at(1)}},
              {"group", {o.groups()}}});
}

std::string GraphBuilder::linear(const nn::LinearImpl& l, const std::string& x) {
  return gemm(x, l.weight, l.bias);
}

std::string GraphBuilder::gemm(const std::string& x, const at::Tensor& w, const at::Tensor& b) {
  std::vector<std::string> inputs{x, weight("w", w)};
  if (b.defined()) inputs.push_back(weight("b", b));
  return add("Gemm", inputs, {{"transB", {1}}}, {{"alpha", 1.0f}, {"beta", 1.0f}});
}

std::string GraphBuilder::pooled(const std::string& x) {
  return add("Flatten", {add("GlobalAveragePool", {x})}, {{"axis", {1}}});
}

std::string GraphBuilder::max_pooled(const std::string& x) {
  return add("Flatten", {add("GlobalMaxPool", {x})}, {{"axis", {1}}});
}

std::string GraphBuilder::layers(nn::SequentialImpl& seq, std::size_t begin, std::size_t end,
                                 const std::string& x) {
  std::string h = x;
  for (std::size_t i = begin; i < end; ++i) {
    auto& m = *seq.ptr(i);
    if (auto* c = m.as<nn::Conv2dImpl>()) {
      h = conv(*c, h);
    } else if (m.as<nn::ReLUImpl>()) {
      h = add("Relu", {h});
    } else if (auto* leaky = m.as<nn::LeakyReLUImpl>()) {
      h = add("LeakyRelu", {h}, {},
              {{"alpha", static_cast<float>(leaky->options.negative_slope())}});
    } else if (auto* pool = m.as<nn::MaxPool2dImpl>()) {
      const auto& o = pool->options;
      h = add("MaxPool", {h},
              {{"kernel_shape", {o.kernel_size()->at(0), o.kernel_size()->at(1)}},
               {"strides", {o.stride()->at(0), o.stride()->at(1)}},
               {"pads",
                {o.padding()->at(0), o.padding()->at(1), o.padding()->at(0), o.padding()->at(1)}},
               {"ceil_mode", {o.ceil_mode() ? 1 : 0}}});
    } else if (auto* avg = m.as<nn::AdaptiveAvgPool2dImpl>()) {
      auto size = avg->options.output_size();
      if (!size->at(0) || !size->at(1) || *size->at(0) != 1 || *size->at(1) != 1)
        throw UsageError("export: only adaptive average pooling to 1x1 can be exported");
      h = add("GlobalAveragePool", {h});
    } else if (m.as<nn::FlattenImpl>()) {
      h = add("Flatten", {h}, {{"axis", {1}}});
    } else if (auto* l = m.as<nn::LinearImpl>()) {
      h = linear(*l, h);
    } else if (m.as<nn::DropoutImpl>()) {
      // the identity at inference
    } else if (m.as<nn::BatchNorm2dImpl>()) {
      throw UsageError("export: batch norm must be folded first (prepare_for_inference)");
    } else {
      throw UsageError("export: layer " + m.name() + " has no graph form");
    }
  }
  return h;
}

InferenceGraph to_inference_graph(const Graph& graph) {
  InferenceGraph out;
  out.input = graph.input;
  out.output = graph.output;
  out.nodes = graph.nodes;
  for (const auto& [name, tensor] : graph.weights) {
    at::Tensor t = tensor.to(at::kFloat).contiguous();
    GraphWeight& w = out.weights[name];
    w.dims.assign(t.sizes().begin(), t.sizes().end());
    if (w.dims.empty()) w.dims.push_back(1);
    w.values.assign(t.data_ptr<float>(), t.data_ptr<float>() + t.numel());
  }
  return out;
}

std::string GraphBuilder::sequential(nn::SequentialImpl& seq, const std::string& x) {
  return layers(seq, 0, seq.size(), x);
}

}  // namespace cd
