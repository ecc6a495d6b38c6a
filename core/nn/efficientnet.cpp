#include "nn/efficientnet.h"

#include <ATen/ATen.h>
#include <torch/nn/modules/container/modulelist.h>
#include <torch/nn/modules/linear.h>

#include <cmath>

#include "nn/fold.h"
#include "nn/graph.h"
#include "util/errors.h"
#include "util/strings.h"

namespace cd {

namespace nn = torch::nn;
using json = nlohmann::json;

namespace {

struct BlockSpec {
  int in = 0, out = 0, expand = 1, kernel = 3, stride = 1;
};

// TensorFlow "SAME": output side ceil(n / s); the padding goes after when uneven.
std::pair<int, int> same_padding(std::int64_t n, int kernel, int stride) {
  std::int64_t out = (n + stride - 1) / stride;
  int total = static_cast<int>(std::max<std::int64_t>((out - 1) * stride + kernel - n, 0));
  return {total / 2, total - total / 2};
}

nn::Conv2d make_conv(int in, int out, int kernel, int stride, int groups = 1) {
  // Stride 1 pads evenly inside the conv; stride 2 pads in forward (same_pad).
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
    y = conv->forward(x);
  } else {
    auto [top, bottom] = same_padding(x.size(2), kernel, stride);
    auto [left, right] = same_padding(x.size(3), kernel, stride);
    at::Tensor w = conv->weight;
    if (bottom != top || right != left)
      w = at::constant_pad_nd(w, {right - left, 0, bottom - top, 0});
    y = at::conv2d(x, w, conv->bias, o.stride(), at::IntArrayRef{bottom, right}, o.dilation(),
                   o.groups());
  }
  return folded ? y : bn->forward(y);
}

class MBConvImpl : public nn::Module {
 public:
  MBConvImpl(const BlockSpec& s, double eps) : m_spec(s) {
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

  at::Tensor forward(const at::Tensor& x) {
    at::Tensor h = x;
    if (!m_expand.is_empty()) h = clip6(conv_bn(m_expand, m_bn0, m_folded, h));
    h = clip6(conv_bn(m_depthwise, m_bn1, m_folded, h));
    h = conv_bn(m_project, m_bn2, m_folded, h);
    bool residual = m_spec.stride == 1 && m_spec.in == m_spec.out;
    return residual ? h + x : h;
  }

  std::string describe(GraphBuilder& g, const std::string& x, std::int64_t& n) {
    std::string h = x;
    if (!m_expand.is_empty()) h = clip6(g, conv_graph(g, m_expand, h, n));
    h = clip6(g, conv_graph(g, m_depthwise, h, n));
    h = conv_graph(g, m_project, h, n);
    bool residual = m_spec.stride == 1 && m_spec.in == m_spec.out;
    return residual ? g.add("Add", {h, x}) : h;
  }

  void fold() {
    if (!m_expand.is_empty())
      m_expand = replace_module("expand_conv", fold_batch_norm(*m_expand, *m_bn0));
    m_depthwise = replace_module("depthwise_conv", fold_batch_norm(*m_depthwise, *m_bn1));
    m_project = replace_module("project_conv", fold_batch_norm(*m_project, *m_bn2));
    m_folded = true;
  }

  // Multiply-adds x 2 for an input of side n; returns the output side.
  double flops(std::int64_t& n) const {
    int mid = m_spec.in * m_spec.expand;
    double f = 0, in_area = static_cast<double>(n * n);
    if (m_spec.expand != 1) f += 2.0 * in_area * m_spec.in * mid;
    n = (n + m_spec.stride - 1) / m_spec.stride;
    double area = static_cast<double>(n * n);
    f += 2.0 * area * mid * m_spec.kernel * m_spec.kernel;
    return f + 2.0 * area * mid * m_spec.out;
  }

  const BlockSpec& spec() const { return m_spec; }

 private:
  BlockSpec m_spec;
  bool m_folded = false;
  nn::Conv2d m_expand{nullptr}, m_depthwise{nullptr}, m_project{nullptr};
  nn::BatchNorm2d m_bn0{nullptr}, m_bn1{nullptr}, m_bn2{nullptr};
};
TORCH_MODULE(MBConv);

class EfficientNetLite : public NetworkImpl {
 public:
  explicit EfficientNetLite(const json& p) {
    m_mode = parse_darknet_features(p.value("features", "pooled"));
    double eps = p.at("bn_eps").get<double>();
    int stem = p.at("stem"), head = p.at("head"), classes = p.at("classes");
    if (eps <= 0 || stem <= 0 || head <= 0 || classes <= 0)
      throw UsageError("efficientnet-lite topology has a non-positive size or epsilon");
    m_stem_conv = register_module("stem_conv", make_conv(3, stem, 3, 2));
    m_stem_bn = register_module("stem_bn", make_bn(stem, eps));
    m_blocks = register_module("blocks", nn::ModuleList());
    int channels = stem;
    for (const auto& b : p.at("blocks")) {
      BlockSpec s{b.at("in"), b.at("out"), b.at("expand"), b.at("kernel"), b.at("stride")};
      if (s.in != channels || s.out <= 0 || s.expand <= 0 || s.kernel % 2 == 0 || s.stride < 1)
        throw UsageError("efficientnet-lite block " + std::to_string(m_blocks->size()) +
                         " does not fit the one before it");
      m_blocks->push_back(MBConv(s, eps));
      channels = s.out;
    }
    if (m_blocks->size() < 2) throw UsageError("efficientnet-lite topology has no blocks");
    // "rich" also pools the outputs of the last two stages: the last block, and
    // the last block before the width changes to the final stage's.
    m_tap = m_blocks->size() - 2;
    while (m_tap > 0 && block(m_tap).spec().out == channels) --m_tap;
    m_tap_channels = block(m_tap).spec().out + channels;
    m_head_conv = register_module("head_conv", make_conv(channels, head, 1, 1));
    m_head_bn = register_module("head_bn", make_bn(head, eps));
    m_imagenet = register_module("imagenet", nn::Linear(head, classes));
    int dim = m_mode == DarknetFeatures::k_pooled   ? head
              : m_mode == DarknetFeatures::k_logits ? classes
                                                    : head + classes;
    if (has_taps(m_mode)) dim += m_tap_channels;
    if (m_mode == DarknetFeatures::k_rich_max) dim += head;
    m_head = register_module("head", nn::Linear(dim, 1));
  }

  at::Tensor embed(const at::Tensor& x) override {
    std::vector<at::Tensor> parts;
    at::Tensor peak;
    at::Tensor pooled = features(x, has_taps(m_mode) ? &parts : nullptr,
                                 m_mode == DarknetFeatures::k_rich_max ? &peak : nullptr);
    if (m_mode == DarknetFeatures::k_pooled) return pooled;
    at::Tensor logits = m_imagenet->forward(pooled);
    if (m_mode == DarknetFeatures::k_logits) return logits;
    parts.push_back(pooled);
    parts.push_back(logits);
    if (peak.defined()) parts.push_back(peak);
    return at::cat(parts, 1);
  }
  at::Tensor classify(const at::Tensor& f) override { return m_head->forward(f); }
  std::vector<at::Tensor> head_parameters() override { return m_head->parameters(); }

  // Folded, the head skips the ImageNet layer: see fold_imagenet_into_head().
  at::Tensor forward(const at::Tensor& x) override {
    if (!m_fused_weight.defined()) return NetworkImpl::forward(x);
    std::vector<at::Tensor> parts;
    at::Tensor peak;
    at::Tensor pooled = features(x, has_taps(m_mode) ? &parts : nullptr,
                                 m_mode == DarknetFeatures::k_rich_max ? &peak : nullptr);
    parts.push_back(pooled);
    if (peak.defined()) parts.push_back(peak);
    return at::addmm(m_fused_bias, parts.size() == 1 ? parts[0] : at::cat(parts, 1),
                     m_fused_weight.t());
  }

  at::Tensor imagenet_logits(const at::Tensor& x) override {
    return m_imagenet->forward(features(x, nullptr, nullptr));
  }

  std::string describe(GraphBuilder& g, const std::string& x, int size) override {
    if (!m_folded) throw UsageError("export: fold batch norm first (prepare_for_inference)");
    std::int64_t n = size;
    std::vector<std::string> parts;
    std::string h = clip6(g, conv_graph(g, m_stem_conv, x, n));
    for (std::size_t i = 0; i < m_blocks->size(); ++i) {
      h = block(i).describe(g, h, n);
      if (has_taps(m_mode) && (i == m_tap || i + 1 == m_blocks->size()))
        parts.push_back(g.pooled(h));
    }
    std::string last = clip6(g, conv_graph(g, m_head_conv, h, n));
    std::string pooled = g.pooled(last);
    if (m_fused_weight.defined()) {  // as forward() runs it: no ImageNet layer
      parts.push_back(pooled);
      if (m_mode == DarknetFeatures::k_rich_max) parts.push_back(g.max_pooled(last));
      std::string in = parts.size() == 1 ? parts[0] : g.add("Concat", parts, {{"axis", {1}}});
      return g.gemm(in, m_fused_weight, m_fused_bias);
    }
    std::string f = describe_head_input(
        g, m_mode, parts, pooled, [&] { return g.linear(*m_imagenet, pooled); },
        [&] { return g.max_pooled(last); });
    return g.linear(*m_head, f);
  }

  void fuse_for_inference() override {
    m_stem_conv = replace_module("stem_conv", fold_batch_norm(*m_stem_conv, *m_stem_bn));
    m_head_conv = replace_module("head_conv", fold_batch_norm(*m_head_conv, *m_head_bn));
    for (std::size_t i = 0; i < m_blocks->size(); ++i) block(i).fold();
    m_folded = true;
    fold_imagenet_into_head();
  }

  // The stem, the seven stages (a stage ends where the width changes), and
  // the 1x1 head conv with the ImageNet classifier.
  std::vector<Modules> stages() override {
    std::vector<Modules> out{{m_stem_conv.ptr(), m_stem_bn.ptr()}};
    for (std::size_t i = 0; i < m_blocks->size(); ++i) {
      if (i == 0 || block(i).spec().out != block(i - 1).spec().out) out.emplace_back();
      out.back().push_back(m_blocks[i]);
    }
    out.push_back({m_head_conv.ptr(), m_head_bn.ptr(), m_imagenet.ptr()});
    return out;
  }

  double flops(int size) override {
    std::int64_t n = (size + 1) / 2;
    const auto& o = m_stem_conv->options;
    double f = 2.0 * static_cast<double>(n * n) * 3 * o.out_channels() * 9;
    int channels = static_cast<int>(o.out_channels());
    for (std::size_t i = 0; i < m_blocks->size(); ++i) {
      f += block(i).flops(n);
      channels = block(i).spec().out;
    }
    f += 2.0 * static_cast<double>(n * n) * channels * m_head_conv->options.out_channels();
    f += 2.0 * m_imagenet->options.in_features() * m_imagenet->options.out_features();
    return f + 2.0 * m_head->options.in_features();
  }

 private:
  MBConvImpl& block(std::size_t i) { return *m_blocks[i]->as<MBConvImpl>(); }

  // The pooled head features; with taps, also the pooled tapped stage outputs;
  // with peak, also the head features' maximum over the positions.
  at::Tensor features(const at::Tensor& x, std::vector<at::Tensor>* taps, at::Tensor* peak) {
    at::Tensor h = clip6(conv_bn(m_stem_conv, m_stem_bn, m_folded, x));
    for (std::size_t i = 0; i < m_blocks->size(); ++i) {
      h = block(i).forward(h);
      if (taps && (i == m_tap || i + 1 == m_blocks->size())) taps->push_back(h.mean({2, 3}));
    }
    h = clip6(conv_bn(m_head_conv, m_head_bn, m_folded, h));
    if (peak) *peak = h.amax({2, 3});
    return h.mean({2, 3});
  }

  // The head reads the ImageNet logits W p + c of the pooled features p, and
  // both layers are linear, so for inference its weights on the logits, h,
  // fold into its weights on p (+ h W) and its bias (+ h c): the 1280 x 1000
  // product per image goes (a 5 MB read at batch 1; in an exported file, 5 MB
  // of its 24). The head's input is then the features without the logits, in
  // embed()'s order. forward() and describe() read the result; embed() still
  // gives the logits, for the feature cache.
  void fold_imagenet_into_head() {
    if (m_mode == DarknetFeatures::k_pooled) return;
    torch::NoGradGuard no_grad;
    const at::Tensor &w = m_head->weight, &imagenet = m_imagenet->weight;
    const std::int64_t pooled = imagenet.size(1), classes = imagenet.size(0);
    const std::int64_t taps = has_taps(m_mode) ? m_tap_channels : 0;
    const std::int64_t at_logits = m_mode == DarknetFeatures::k_logits ? 0 : taps + pooled;
    at::Tensor h = w.narrow(1, at_logits, classes);
    at::Tensor on_pooled = h.mm(imagenet);
    if (m_mode != DarknetFeatures::k_logits) on_pooled += w.narrow(1, taps, pooled);
    std::vector<at::Tensor> parts{w.narrow(1, 0, taps), on_pooled};
    if (m_mode == DarknetFeatures::k_rich_max)
      parts.push_back(w.narrow(1, at_logits + classes, pooled));
    // Buffers, so that they follow the network to its device.
    m_fused_weight = register_buffer("fused_head_weight", at::cat(parts, 1).contiguous());
    m_fused_bias = register_buffer("fused_head_bias",
                                   m_head->bias + h.mm(m_imagenet->bias.unsqueeze(1)).view({-1}));
  }

  DarknetFeatures m_mode = DarknetFeatures::k_pooled;
  at::Tensor m_fused_weight, m_fused_bias;  // fold_imagenet_into_head()
  bool m_folded = false;
  std::size_t m_tap = 0;
  int m_tap_channels = 0;
  nn::Conv2d m_stem_conv{nullptr}, m_head_conv{nullptr};
  nn::BatchNorm2d m_stem_bn{nullptr}, m_head_bn{nullptr};
  nn::ModuleList m_blocks{nullptr};
  nn::Linear m_imagenet{nullptr}, m_head{nullptr};
};

}  // namespace

bool is_efficientnet_lite(const std::string& architecture) {
  return starts_with(architecture, "efficientnet-lite");
}

Network efficientnet_lite(const json& params) {
  try {
    return std::make_shared<EfficientNetLite>(params);
  } catch (const json::exception& e) {
    throw UsageError(std::string("efficientnet-lite topology is malformed: ") + e.what());
  }
}

}  // namespace cd
