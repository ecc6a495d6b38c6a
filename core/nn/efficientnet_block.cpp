#include "nn/efficientnet_block.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <utility>

#include "nn/fold.h"

namespace cd::lite {

namespace nn = torch::nn;

namespace {

// TensorFlow "SAME": output side ceil(n / s); the padding goes after when uneven.
std::pair<int, int> same_padding(std::int64_t n, int kernel, int stride) {
  std::int64_t out = (n + stride - 1) / stride;
  int total = static_cast<int>(std::max<std::int64_t>((out - 1) * stride + kernel - n, 0));
  return {total / 2, total - total / 2};
}

}  // namespace

nn::Conv2d make_conv(int in, int out, int kernel, int stride, int groups) {
  // Stride 1 pads evenly inside the conv; stride 2 pads in conv_bn.
  return nn::Conv2d(nn::Conv2dOptions(in, out, kernel)
                        .stride(stride)
                        .padding(stride == 1 ? kernel / 2 : 0)
                        .groups(groups)
                        .bias(false));
}

nn::BatchNorm2d make_bn(int channels, double eps) {
  return nn::BatchNorm2d(nn::BatchNorm2dOptions(channels).eps(eps));
}

at::Tensor clip6(at::Tensor x) { return at::hardtanh_(x, 0.0, 6.0); }

std::string clip6(GraphBuilder& g, const std::string& x) {
  return g.add("Clip", {x}, {}, {{"min", 0.0f}, {"max", 6.0f}});
}

// conv_bn's graph, folded: SAME padding, uneven on a stride-2 conv. A
// depthwise conv takes it in its own pads (catdog's ONNX runtime runs those
// itself, without a padded copy); the stem gets an explicit Pad, exactly what
// forward does. n is the side going in and coming out.
std::string conv_graph(GraphBuilder& g, nn::Conv2d& conv, const std::string& x, std::int64_t& n) {
  const auto& o = conv->options;
  int stride = static_cast<int>(o.stride()->at(0)),
      kernel = static_cast<int>(o.kernel_size()->at(0));
  bool depthwise = o.groups() > 1 && o.groups() == o.in_channels();
  std::string in = x;
  std::int64_t side = n;
  n = (n + stride - 1) / stride;
  if (stride == 1) return g.conv(*conv, in);
  auto [before, after] = same_padding(side, kernel, stride);
  if (depthwise) return g.conv(*conv, in, {before, before, after, after});
  if (before + after > 0)
    in = g.add("Pad", {x}, {{"pads", {0, 0, before, before, 0, 0, after, after}}},
               {{"value", 0.0f}});
  return g.conv(*conv, in);
}

// A conv with TF "SAME" padding, then its batch norm unless folded into it.
// A stride-2 conv pads one more after than before at an even side. Rather than
// copy the input into a padded tensor (an eighth of Lite2's inference time at
// batch 1), the conv pads evenly by the larger amount and the kernel gets a
// leading zero row or column: the same taps, the same sums, no copy.
at::Tensor conv_bn(nn::Conv2d& conv, nn::BatchNorm2d& bn, bool folded, const at::Tensor& x) {
  const auto& o = conv->options;
  int stride = static_cast<int>(o.stride()->at(0)),
      kernel = static_cast<int>(o.kernel_size()->at(0));
  at::Tensor y;
  if (stride == 1) {
    std::int64_t pad = kernel / 2;  // as make_conv pads at stride 1
    y = cd::conv2d(x, conv->weight, conv->bias, o.stride(), {pad, pad}, o.dilation(), o.groups());
  } else {
    auto [top, bottom] = same_padding(x.size(2), kernel, stride);
    auto [left, right] = same_padding(x.size(3), kernel, stride);
    at::Tensor w = conv->weight;
    if (bottom != top || right != left)
      w = at::constant_pad_nd(w, {right - left, 0, bottom - top, 0});
    y = cd::conv2d(x, w, conv->bias, o.stride(), {bottom, right}, o.dilation(), o.groups());
  }
  return folded ? y : bn->forward(y);
}

onednn::LiteConv lite_conv(const nn::Conv2d& conv, bool clip6) {
  const auto& o = conv->options;
  return {conv->weight.contiguous(), conv->bias.contiguous(), static_cast<int>(o.stride()->at(0)),
          static_cast<int>(o.groups()), clip6};
}

MBConvImpl::MBConvImpl(const BlockSpec& s, double eps) : m_spec(s) {
  int mid = s.in * s.expand;
  if (s.expand != 1) {
    m_expand = register_module("expand_conv", make_conv(s.in, mid, 1, 1));
    m_bn0 = register_module("bn0", make_bn(mid, eps));
  }
  m_depthwise = register_module("depthwise_conv", make_conv(mid, mid, s.kernel, s.stride, mid));
  m_bn1 = register_module("bn1", make_bn(mid, eps));
  m_project = register_module("project_conv", make_conv(mid, s.out, 1, 1));
  m_bn2 = register_module("bn2", make_bn(s.out, eps));
}

at::Tensor MBConvImpl::forward(const at::Tensor& x) {
  at::Tensor h = x;
  if (!m_expand.is_empty()) h = clip6(conv_bn(m_expand, m_bn0, m_folded, h));
  h = clip6(conv_bn(m_depthwise, m_bn1, m_folded, h));
  h = conv_bn(m_project, m_bn2, m_folded, h);
  bool residual = m_spec.stride == 1 && m_spec.in == m_spec.out;
  return residual ? h + x : h;
}

std::string MBConvImpl::describe(GraphBuilder& g, const std::string& x, std::int64_t& n) {
  std::string h = x;
  if (!m_expand.is_empty()) h = clip6(g, conv_graph(g, m_expand, h, n));
  h = clip6(g, conv_graph(g, m_depthwise, h, n));
  h = conv_graph(g, m_project, h, n);
  bool residual = m_spec.stride == 1 && m_spec.in == m_spec.out;
  return residual ? g.add("Add", {h, x}) : h;
}

void MBConvImpl::fold() {
  if (!m_expand.is_empty())
    m_expand = replace_module("expand_conv", fold_batch_norm(*m_expand, *m_bn0));
  m_depthwise = replace_module("depthwise_conv", fold_batch_norm(*m_depthwise, *m_bn1));
  m_project = replace_module("project_conv", fold_batch_norm(*m_project, *m_bn2));
  m_folded = true;
}

onednn::LiteBlock MBConvImpl::folded() const {
  onednn::LiteBlock b;
  b.has_expand = !m_expand.is_empty();
  if (b.has_expand) b.expand = lite_conv(m_expand, true);
  b.depthwise = lite_conv(m_depthwise, true);
  b.project = lite_conv(m_project, false);
  b.residual = m_spec.stride == 1 && m_spec.in == m_spec.out;
  return b;
}

double MBConvImpl::flops(std::int64_t& n) const {
  int mid = m_spec.in * m_spec.expand;
  double f = 0, in_area = static_cast<double>(n * n);
  if (m_spec.expand != 1) f += 2.0 * in_area * m_spec.in * mid;
  n = (n + m_spec.stride - 1) / m_spec.stride;
  double area = static_cast<double>(n * n);
  f += 2.0 * area * mid * m_spec.kernel * m_spec.kernel;
  return f + 2.0 * area * mid * m_spec.out;
}

}  // namespace cd::lite
