#include "nn/efficientnet.h"

#include <ATen/ATen.h>
#include <torch/nn/modules/container/modulelist.h>
#include <torch/nn/modules/linear.h>

#include <cmath>
#include <cstdlib>
#include <map>
#include <memory>
#include <utility>

#include "nn/efficientnet_block.h"
#include "nn/fold.h"
#include "nn/graph.h"
#include "util/errors.h"
#include "util/strings.h"

namespace cd {

namespace nn = torch::nn;
using json = nlohmann::json;

namespace {

using lite::BlockSpec;
using lite::clip6;
using lite::conv_bn;
using lite::conv_graph;
using lite::make_bn;
using lite::make_conv;
using lite::MBConv;
using lite::MBConvImpl;

class EfficientNetLite : public NetworkImpl {
 public:
  // trunk: the backbone alone, without a cat/dog head: the second backbone
  // ("second" in the params) that another EfficientNetLite's head also reads.
  explicit EfficientNetLite(const json& p, bool trunk = false) {
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
    m_dim_one = dim;
    if (trunk) return;
    for (const auto& side : p.value("scales", json::array())) {
      int s = side.get<int>();
      if (s < 32 || s > 1024)
        throw UsageError("efficientnet-lite second input size " + std::to_string(s) +
                         " is outside 32-1024");
      m_scales.push_back(s);
    }
    std::int64_t width = dim * static_cast<std::int64_t>(1 + m_scales.size());
    if (p.contains("second")) {
      const json& q = p.at("second");
      m_second_side = q.at("side").get<int>();
      if (m_second_side < 32 || m_second_side > 1024)
        throw UsageError("efficientnet-lite second backbone's input size " +
                         std::to_string(m_second_side) + " is outside 32-1024");
      if (q.value("features", "pooled") != p.value("features", "pooled"))
        throw UsageError("efficientnet-lite second backbone reads other features than the first");
      m_second = register_module("second", std::make_shared<EfficientNetLite>(q, true));
      width += m_second->m_dim_one;
    }
    m_head = register_module("head", nn::Linear(width, 1));
  }

  // Each look's features side by side (one look unless scales or a second
  // backbone are set).
  at::Tensor embed(const at::Tensor& x) override {
    std::vector<at::Tensor> parts;
    for (const at::Tensor& look : looks(x)) parts.push_back(embed_one(look));
    if (m_second) parts.push_back(m_second->embed_one(resized(x, m_second_side)));
    return parts.size() == 1 ? parts[0] : at::cat(parts, 1);
  }
  at::Tensor classify(const at::Tensor& f) override { return m_head->forward(f); }
  std::vector<at::Tensor> head_parameters() override { return m_head->parameters(); }

  // Folded, the head skips the ImageNet layer: see fold_imagenet_into_head().
  at::Tensor forward(const at::Tensor& x) override {
    if (!m_fused_weight.defined()) return NetworkImpl::forward(x);
    std::vector<at::Tensor> parts;
    for (const at::Tensor& look : looks(x)) pooled_parts(look, parts);
    if (m_second) m_second->pooled_parts(resized(x, m_second_side), parts);
    return at::addmm(m_fused_bias, parts.size() == 1 ? parts[0] : at::cat(parts, 1),
                     m_fused_weight.t());
  }

  at::Tensor imagenet_logits(const at::Tensor& x) override {
    return m_imagenet->forward(features(x, nullptr, nullptr));
  }

  // As forward() runs it, folded: each look's pooled features side by side,
  // then the head with the ImageNet layer folded in.
  std::string describe(GraphBuilder& g, const std::string& x, int size) override {
    if (!m_folded) throw UsageError("export: fold batch norm first (prepare_for_inference)");
    std::vector<std::string> parts;
    describe_look(g, x, size, parts);
    for (int s : m_scales) describe_look(g, resized_graph(g, x, size, s), s, parts);
    if (m_second)
      m_second->describe_look(g,
                              m_second_side == size ? x : resized_graph(g, x, size, m_second_side),
                              m_second_side, parts);
    std::string in = parts.size() == 1 ? parts[0] : g.add("Concat", parts, {{"axis", {1}}});
    return g.gemm(in, m_fused_weight, m_fused_bias);
  }

  void fuse_for_inference() override {
    fold_backbone();
    fold_imagenet_into_head();
  }

  // The stem, the seven stages (a stage ends where the width changes), and
  // the 1x1 head conv with the ImageNet classifier; a second backbone comes
  // first, whole, so fine-tuning the last stages leaves it frozen.
  std::vector<Modules> stages() override {
    std::vector<Modules> out;
    if (m_second) out.push_back({m_second});
    out.push_back({m_stem_conv.ptr(), m_stem_bn.ptr()});
    for (std::size_t i = 0; i < m_blocks->size(); ++i) {
      if (i == 0 || block(i).spec().out != block(i - 1).spec().out) out.emplace_back();
      out.back().push_back(m_blocks[i]);
    }
    out.push_back({m_head_conv.ptr(), m_head_bn.ptr(), m_imagenet.ptr()});
    return out;
  }

  double flops(int size) override {
    double f = flops_one(size) + 2.0 * m_head->options.in_features();
    for (int s : m_scales) f += flops_one(s);
    if (m_second) f += m_second->flops_one(m_second_side);
    return f;
  }

 private:
  MBConvImpl& block(std::size_t i) { return *m_blocks[i]->as<MBConvImpl>(); }

  // The backbone and the ImageNet layer at one input side.
  double flops_one(int size) {
    std::int64_t n = (size + 1) / 2;
    const auto& o = m_stem_conv->options;
    double f = 2.0 * static_cast<double>(n * n) * 3 * o.out_channels() * 9;
    int channels = static_cast<int>(o.out_channels());
    for (std::size_t i = 0; i < m_blocks->size(); ++i) {
      f += block(i).flops(n);
      channels = block(i).spec().out;
    }
    f += 2.0 * static_cast<double>(n * n) * channels * m_head_conv->options.out_channels();
    return f + 2.0 * m_imagenet->options.in_features() * m_imagenet->options.out_features();
  }

  // The image as given, then as each further input side would have it
  // (antialiased bilinear, which shrinks without aliasing).
  std::vector<at::Tensor> looks(const at::Tensor& x) const {
    std::vector<at::Tensor> out{x};
    for (int side : m_scales) out.push_back(resized(x, side));
    return out;
  }
  static at::Tensor resized(const at::Tensor& x, int side) {
    if (x.size(2) == side && x.size(3) == side) return x;
    return at::_upsample_bilinear2d_aa(x, {side, side}, false);
  }

  // BN into the convolutions, here and in a second backbone; then the oneDNN
  // engine on the folded weights.
  void fold_backbone() {
    m_stem_conv = replace_module("stem_conv", fold_batch_norm(*m_stem_conv, *m_stem_bn));
    m_head_conv = replace_module("head_conv", fold_batch_norm(*m_head_conv, *m_head_bn));
    for (std::size_t i = 0; i < m_blocks->size(); ++i) block(i).fold();
    m_folded = true;
    if (m_second) m_second->fold_backbone();
    if (lite_engine_wanted() && m_stem_conv->weight.is_cpu())
      m_engine = std::make_unique<onednn::LiteEngine>(folded_net());
  }

  // One look's head input as the folded head reads it: the tapped stage
  // outputs, the pooled head features and, with rich-max, their maximum.
  void pooled_parts(const at::Tensor& look, std::vector<at::Tensor>& parts) {
    at::Tensor peak;
    at::Tensor pooled = features(look, has_taps(m_mode) ? &parts : nullptr,
                                 m_mode == DarknetFeatures::k_rich_max ? &peak : nullptr);
    parts.push_back(pooled);
    if (peak.defined()) parts.push_back(peak);
  }

  // A further look as a graph. The antialiased bilinear map from n to side is
  // linear and the same along each axis: a matrix A [side, n], which the same
  // operator gives when it shrinks the identity. Each axis in turn moves to the
  // channel axis and through a 1x1 Conv with A as its kernel (Transpose and
  // Conv: what every runtime has, as the exported mirror uses).
  // The matrix is kept, so both views of an exported TTA share one constant.
  std::string resized_graph(GraphBuilder& g, const std::string& x, int n, int side) {
    at::Tensor& kernel = m_resize_kernels[{n, side}];
    if (!kernel.defined()) {
      at::Tensor rows =
          at::_upsample_bilinear2d_aa(at::eye(n).view({1, n, n, 1}), {side, 1}, false);
      kernel = rows.view({n, side}).t().reshape({side, n, 1, 1});
    }
    std::string a = g.weight("resize", kernel);
    auto mix = [&](const std::string& in) {
      return g.add(
          "Conv", {in, a},
          {{"kernel_shape", {1, 1}}, {"strides", {1, 1}}, {"pads", {0, 0, 0, 0}}, {"group", {1}}});
    };
    std::string by_width = mix(g.add("Transpose", {x}, {{"perm", {0, 3, 2, 1}}}));  // N W' H C
    std::string by_height = mix(g.add("Transpose", {by_width}, {{"perm", {0, 2, 1, 3}}}));
    return g.add("Transpose", {by_height}, {{"perm", {0, 3, 1, 2}}});  // N C H' W'
  }

  // One look's graph: the tapped stage outputs, the head features, pooled.
  void describe_look(GraphBuilder& g, const std::string& x, int size,
                     std::vector<std::string>& parts) {
    std::int64_t n = size;
    std::string h = clip6(g, conv_graph(g, m_stem_conv, x, n));
    for (std::size_t i = 0; i < m_blocks->size(); ++i) {
      h = block(i).describe(g, h, n);
      if (has_taps(m_mode) && (i == m_tap || i + 1 == m_blocks->size()))
        parts.push_back(g.pooled(h));
    }
    std::string last = clip6(g, conv_graph(g, m_head_conv, h, n));
    parts.push_back(g.pooled(last));
    if (m_mode == DarknetFeatures::k_rich_max) parts.push_back(g.max_pooled(last));
  }

  at::Tensor embed_one(const at::Tensor& x) {
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

  // The pooled head features; with taps, also the pooled tapped stage outputs;
  // with peak, also the head features' maximum over the positions.
  at::Tensor features(const at::Tensor& x, std::vector<at::Tensor>* taps, at::Tensor* peak) {
    if (m_engine && x.is_cpu() && m_stem_conv->weight.is_cpu() && x.scalar_type() == at::kFloat &&
        x.dim() == 4 && !at::GradMode::is_enabled()) {
      bool laid_out = x.is_contiguous() || x.is_contiguous(at::MemoryFormat::ChannelsLast);
      std::vector<at::Tensor> out = m_engine->run(laid_out ? x : x.contiguous());
      if (!out.empty()) {  // empty: another thread runs the engine; ATen below
        std::size_t next = 0;
        if (has_taps(m_mode)) {
          taps->push_back(out[next++]);
          taps->push_back(out[next++]);
        }
        at::Tensor pooled = out[next++];
        if (peak) *peak = out[next];
        return pooled;
      }
    }
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
  // With scales or a second backbone, each look's block of head weights folds
  // on its own, through its own backbone's ImageNet layer. Pooled features
  // have no ImageNet layer to fold: the head's weights as they are.
  void fold_imagenet_into_head() {
    torch::NoGradGuard no_grad;
    std::vector<at::Tensor> parts;
    at::Tensor bias = m_head->bias.clone();
    std::int64_t offset = 0;
    for (std::size_t k = 0; k <= m_scales.size(); ++k, offset += m_dim_one)
      fold_look(m_head->weight.narrow(1, offset, m_dim_one), parts, bias);
    if (m_second)
      m_second->fold_look(m_head->weight.narrow(1, offset, m_second->m_dim_one), parts, bias);
    // Buffers, so that they follow the network to its device.
    m_fused_weight = register_buffer("fused_head_weight", at::cat(parts, 1).contiguous());
    m_fused_bias = register_buffer("fused_head_bias", bias);
  }

  // One look's block w of head weights, folded through this backbone's
  // ImageNet layer: its parts of the fused weight, its share of the bias.
  void fold_look(const at::Tensor& w, std::vector<at::Tensor>& parts, at::Tensor& bias) {
    if (m_mode == DarknetFeatures::k_pooled) {
      parts.push_back(w);
      return;
    }
    const at::Tensor& imagenet = m_imagenet->weight;
    const std::int64_t pooled = imagenet.size(1), classes = imagenet.size(0);
    const std::int64_t taps = has_taps(m_mode) ? m_tap_channels : 0;
    const std::int64_t at_logits = m_mode == DarknetFeatures::k_logits ? 0 : taps + pooled;
    at::Tensor h = w.narrow(1, at_logits, classes);
    at::Tensor on_pooled = h.mm(imagenet);
    if (m_mode != DarknetFeatures::k_logits) on_pooled += w.narrow(1, taps, pooled);
    parts.push_back(w.narrow(1, 0, taps));
    parts.push_back(on_pooled);
    if (m_mode == DarknetFeatures::k_rich_max)
      parts.push_back(w.narrow(1, at_logits + classes, pooled));
    bias += h.mm(m_imagenet->bias.unsqueeze(1)).view({-1});
  }

  // The oneDNN engine's view of the folded network: the same tensors.
  onednn::LiteNet folded_net() {
    onednn::LiteNet net;
    net.stem = lite::lite_conv(m_stem_conv, true);
    for (std::size_t i = 0; i < m_blocks->size(); ++i) net.blocks.push_back(block(i).folded());
    net.head = lite::lite_conv(m_head_conv, true);
    if (has_taps(m_mode)) net.taps = {m_tap, m_blocks->size() - 1};
    net.peak = m_mode == DarknetFeatures::k_rich_max;
    return net;
  }

  // Where this build has the engine, unless CATDOG_LITE_ENGINE=aten asks for
  // LibTorch's own ops (to compare the two, as bench_floor does).
  static bool lite_engine_wanted() {
    const char* choice = std::getenv("CATDOG_LITE_ENGINE");
    return onednn::lite_engine_available() && !(choice && std::string(choice) == "aten");
  }

  DarknetFeatures m_mode = DarknetFeatures::k_pooled;
  std::unique_ptr<onednn::LiteEngine> m_engine;  // set by fuse_for_inference()
  std::vector<int> m_scales;                     // further input sides the backbone looks at
  std::shared_ptr<EfficientNetLite> m_second;    // a second backbone ("second"), or none
  int m_second_side = 0;                         // the input side it looks at
  std::int64_t m_dim_one = 0;                    // embed_one()'s width
  std::map<std::pair<int, int>, at::Tensor> m_resize_kernels;  // resized_graph(), by (n, side)
  at::Tensor m_fused_weight, m_fused_bias;                     // fold_imagenet_into_head()
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
