#include "runtime/quantize.h"

#include <algorithm>
#include <cmath>
#include <string>

#include "util/errors.h"

namespace cd::onednn {

std::optional<Int8Input> int8_input(const PlanBuilder& b, const Op& op) {
  if (b.precision != Precision::k_int8 || op.node->op != "Conv") return std::nullopt;
  const Range& range = b.ranges->at(static_cast<std::size_t>(&op - b.ops->data()));
  const GraphWeight& w = b.weight(op.node->inputs.at(1));
  const std::int64_t groups = op.node->int_attr("group", 1);
  if (!range.seen() || w.dims.size() != 4) return std::nullopt;
  const bool depthwise = groups == w.dims[0] && w.dims[1] == 1;
  if (groups != 1 && !depthwise) return std::nullopt;
  // Without VNNI (this AVX2 machine), oneDNN's dense int8 kernels multiply
  // u8 by s8 in pairs whose sum is held in 16 bits: 2 x 255 x 127 would
  // overflow it. So a dense Conv reads u8 to 255 with its weights to 63
  // (2 x 255 x 63 = 32,130 fits); its depthwise kernels widen each product
  // to 32 bits, so a depthwise Conv reads u8 to 255 with weights to 127. An
  // s8 input keeps 127 and weights to 127: oneDNN halves those weights
  // itself. The full 255 for the ReLU6 outputs the depthwise Convs read
  // halved the two-backbone model's changed decisions on validation
  // (docs/decisions/2026-12-06-int8.md).
  const float reach = std::max({std::abs(range.lo), std::abs(range.hi), 1e-6f});
  if (range.lo < 0.f) return Int8Input{memory::data_type::s8, 127.f / reach};
  return Int8Input{memory::data_type::u8, 255.f / reach, depthwise ? 127.f : 63.f};
}

std::optional<Int8Input> int8_output(const PlanBuilder& b, const Op& op, Activation& act) {
  auto readers = b.readers.find(op.output);
  if (!op.sum.empty() || op.output == b.graph().output || readers == b.readers.end() ||
      readers->second.size() != 1)
    return std::nullopt;
  const Op& next = b.ops->at(readers->second[0]);
  if (next.inputs.empty() || next.inputs[0] != op.output || next.sum == op.output)
    return std::nullopt;
  std::optional<Int8Input> in = int8_input(b, next);
  if (!in) return std::nullopt;
  if (act && act.alg == dnnl::algorithm::eltwise_clip) {
    act.alpha *= in->scale;
    act.beta *= in->scale;
  } else if (act && act.alg != dnnl::algorithm::eltwise_relu) {
    return std::nullopt;  // a ReLU (of any slope) commutes with a positive scale; others do not
  }
  return in;
}

Int8Conv int8_conv(PlanBuilder& b, const GraphNode& n, const Int8Input& src, const dims& wdims) {
  const GraphWeight& w = b.weight(n.inputs.at(1));
  const std::int64_t out = w.dims[0];
  const std::size_t per_channel = w.count() / static_cast<std::size_t>(out);
  Int8Conv q{src,
             {},
             std::vector<float>(static_cast<std::size_t>(out)),
             memory({{out}, k_f32, tag::x}, b.engine())};
  std::vector<float> weight_scales(static_cast<std::size_t>(out));
  const float* bias_in = nullptr;
  if (n.inputs.size() > 2) {
    const GraphWeight& given = b.weight(n.inputs[2]);
    if (given.count() != static_cast<std::size_t>(out))
      throw ModelError("a Conv's bias '" + n.inputs[2] + "' does not have one value per channel");
    bias_in = given.data();
  }
  auto* bias = static_cast<float*>(q.bias.get_data_handle());
  for (std::size_t c = 0; c < static_cast<std::size_t>(out); ++c) {
    const float* wc = w.data() + c * per_channel;
    float most = 0.f;
    for (std::size_t i = 0; i < per_channel; ++i) most = std::max(most, std::abs(wc[i]));
    weight_scales[c] = most > 0.f ? src.weight_reach / most : 1.f;
    q.output_scales[c] = 1.f / (src.scale * weight_scales[c]);
    bias[c] = bias_in ? bias_in[c] / q.output_scales[c] : 0.f;
  }
  // Per output channel: dim 0 of [out, in, kh, kw]; dims 0 and 1 of a
  // depthwise Conv's [groups, 1, 1, kh, kw].
  q.weight_attr.set_output_scales(wdims.size() == 5 ? (1 << 0) | (1 << 1) : 1 << 0, weight_scales);
  return q;
}

}  // namespace cd::onednn
