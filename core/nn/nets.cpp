#include "nn/nets.h"

#include <torch/nn/modules/activation.h>
#include <torch/nn/modules/batchnorm.h>
#include <torch/nn/modules/conv.h>
#include <torch/nn/modules/dropout.h>
#include <torch/nn/modules/pooling.h>

#include "nn/efficientnet.h"
#include "nn/fold.h"
#include "nn/graph.h"
#include "nn/weights.h"
#include "util/errors.h"

namespace cd {

namespace nn = torch::nn;

namespace {

// Runs x through a Sequential layer by layer, adding up conv and linear FLOPs.
double sequential_flops(nn::Sequential& seq, at::Tensor& x) {
  double flops = 0;
  for (auto it = seq->begin(); it != seq->end(); ++it) {
    x = it->forward(x);
    if (auto* conv = it->ptr()->as<nn::Conv2dImpl>()) {
      const auto& o = conv->options;
      flops += 2.0 * x.numel() * (o.in_channels() / o.groups()) * o.kernel_size()->at(0) *
               o.kernel_size()->at(1);
    } else if (auto* linear = it->ptr()->as<nn::LinearImpl>()) {
      flops += 2.0 * linear->options.in_features() * linear->options.out_features();
    }
  }
  return flops;
}

// baseline and compact: a Sequential body and a one-logit linear head.
class SequentialNet : public NetworkImpl {
 public:
  SequentialNet(nn::Sequential body, int features) {
    m_body = register_module("body", body);
    m_head = register_module("head", nn::Linear(features, 1));
  }
  at::Tensor embed(const at::Tensor& x) override { return m_body->forward(x); }
  at::Tensor classify(const at::Tensor& f) override { return m_head->forward(f); }
  std::vector<at::Tensor> head_parameters() override { return m_head->parameters(); }
  void fuse_for_inference() override { m_body = replace_module("body", fuse_conv_bn(m_body)); }
  std::string describe(GraphBuilder& g, const std::string& x, int) override {
    return g.linear(*m_head, g.sequential(*m_body, x));
  }
  double flops(int size) override {
    torch::NoGradGuard no_grad;
    at::Tensor x = torch::zeros({1, 3, size, size});
    return sequential_flops(m_body, x) + 2.0 * m_head->options.in_features();
  }

 private:
  nn::Sequential m_body{nullptr};
  nn::Linear m_head{nullptr};
};

// The original Keras model: valid 3x3 convs, 2x2 pools, dense 512, dropout 0.5.
Network baseline(int input_size) {
  nn::Sequential body;
  int channels = 3, side = input_size;
  for (int width : {32, 64, 128, 128}) {
    body->push_back(nn::Conv2d(nn::Conv2dOptions(channels, width, 3)));
    body->push_back(nn::ReLU());
    body->push_back(nn::MaxPool2d(nn::MaxPool2dOptions(2)));
    channels = width;
    side = (side - 2) / 2;
  }
  if (side < 1) throw UsageError("baseline needs an input size of at least 46 pixels");
  body->push_back(nn::Flatten());
  body->push_back(nn::Linear(channels * side * side, 512));
  body->push_back(nn::ReLU());
  body->push_back(nn::Dropout(0.5));
  return std::make_shared<SequentialNet>(body, 512);
}

Network compact(const nlohmann::json& given) {
  const nlohmann::json params = given.is_object() ? given : nlohmann::json::object();
  auto widths = params.value("widths", std::vector<int>{32, 64, 128, 192, 256});
  double dropout = params.value("dropout", 0.3);
  nn::Sequential body;
  int channels = 3;
  for (int width : widths) {
    body->push_back(nn::Conv2d(nn::Conv2dOptions(channels, width, 3).padding(1).bias(false)));
    body->push_back(nn::BatchNorm2d(width));
    body->push_back(nn::ReLU());
    body->push_back(nn::MaxPool2d(nn::MaxPool2dOptions(2)));
    channels = width;
  }
  body->push_back(nn::AdaptiveAvgPool2d(nn::AdaptiveAvgPool2dOptions(1)));
  body->push_back(nn::Flatten());
  body->push_back(nn::Dropout(dropout));
  return std::make_shared<SequentialNet>(body, channels);
}

// Tiny Darknet: conv(no bias)-BN-LeakyReLU blocks with 'same' padding and
// ceil-mode max-pools, a 1x1 conv to the ImageNet classes, global average
// pooling. The cat/dog head reads the pooled last features, the ImageNet
// logits, or both.
class DarknetNet : public NetworkImpl {
 public:
  explicit DarknetNet(const nlohmann::json& p) {
    m_mode = parse_darknet_features(p.value("features", "both"));
    double slope = p.at("leaky").get<double>(), eps = p.at("bn_eps").get<double>();
    nn::Sequential features;
    int channels = 3;
    for (const auto& layer : p.at("layers")) {
      if (layer.at("type") == "pool") {
        features->push_back(nn::MaxPool2d(nn::MaxPool2dOptions(2).stride(2).ceil_mode(true)));
        continue;
      }
      int filters = layer.at("filters"), kernel = layer.at("kernel");
      features->push_back(
          nn::Conv2d(nn::Conv2dOptions(channels, filters, kernel).padding(kernel / 2).bias(false)));
      features->push_back(nn::BatchNorm2d(nn::BatchNorm2dOptions(filters).eps(eps)));
      features->push_back(nn::LeakyReLU(nn::LeakyReLUOptions().negative_slope(slope)));
      channels = filters;
      if (filters >= 256) {  // "rich" also pools the wide blocks of the last two stages
        m_taps.push_back(features->size() - 1);
        m_tap_channels += filters;
      }
    }
    int classes = p.at("classes");
    m_features = register_module("features", features);
    m_imagenet = register_module("imagenet", nn::Conv2d(nn::Conv2dOptions(channels, classes, 1)));
    int dim = m_mode == DarknetFeatures::k_pooled   ? channels
              : m_mode == DarknetFeatures::k_logits ? classes
                                                    : channels + classes;
    if (has_taps(m_mode)) dim += m_tap_channels;
    if (m_mode == DarknetFeatures::k_rich_max) dim += channels;
    m_head = register_module("head", nn::Linear(dim, 1));
  }
  at::Tensor embed(const at::Tensor& x) override {
    if (has_taps(m_mode)) return embed_rich(x);
    at::Tensor f = m_features->forward(x);
    if (m_mode == DarknetFeatures::k_pooled) return f.mean({2, 3});
    at::Tensor logits = m_imagenet->forward(f).mean({2, 3});
    if (m_mode == DarknetFeatures::k_logits) return logits;
    return at::cat({f.mean({2, 3}), logits}, 1);
  }
  at::Tensor classify(const at::Tensor& f) override { return m_head->forward(f); }
  std::vector<at::Tensor> head_parameters() override { return m_head->parameters(); }
  void fuse_for_inference() override {
    // Folding drops every BN module that follows a conv; move the taps with them.
    std::vector<std::size_t> new_index(m_features->size());
    std::size_t j = 0;
    for (std::size_t i = 0; i < m_features->size(); ++i) {
      bool folded = i > 0 && m_features[i]->as<nn::BatchNorm2dImpl>() &&
                    m_features[i - 1]->as<nn::Conv2dImpl>();
      new_index[i] = folded ? j - 1 : j++;
    }
    for (auto& tap : m_taps) tap = new_index[tap];
    m_features = replace_module("features", fuse_conv_bn(m_features));
  }
  at::Tensor imagenet_logits(const at::Tensor& x) override {
    return m_imagenet->forward(m_features->forward(x)).mean({2, 3});
  }
  // The same dataflow as embed() and classify().
  std::string describe(GraphBuilder& g, const std::string& x, int) override {
    std::vector<std::string> parts;
    std::string h = x;
    std::size_t tap = 0;
    for (std::size_t i = 0; i < m_features->size(); ++i) {
      h = g.layers(*m_features, i, i + 1, h);
      if (has_taps(m_mode) && tap < m_taps.size() && m_taps[tap] == i) {
        parts.push_back(g.pooled(h));
        ++tap;
      }
    }
    std::string f = describe_head_input(
        g, m_mode, parts, g.pooled(h), [&] { return g.pooled(g.conv(*m_imagenet, h)); },
        [&] { return g.max_pooled(h); });
    return g.linear(*m_head, f);
  }
  std::vector<Modules> stages() override {
    std::vector<Modules> out(1);
    for (const auto& child : m_features->children()) {
      if (child->as<nn::MaxPool2dImpl>()) {
        out.emplace_back();
        continue;
      }
      out.back().push_back(child);
    }
    out.back().push_back(m_imagenet.ptr());
    return out;
  }
  double flops(int size) override {
    torch::NoGradGuard no_grad;
    at::Tensor x = torch::zeros({1, 3, size, size});
    double f = sequential_flops(m_features, x);
    f += 2.0 * x.size(2) * x.size(3) * x.size(1) * m_imagenet->options.out_channels();
    return f + 2.0 * m_head->options.in_features();
  }

 private:
  // Average-pools the tapped intermediate blocks too: mid-level texture and
  // part features that the ImageNet logits have already thrown away.
  at::Tensor embed_rich(const at::Tensor& x) {
    std::vector<at::Tensor> parts;
    at::Tensor f = x;
    std::size_t tap = 0;
    for (std::size_t i = 0; i < m_features->size(); ++i) {
      f = m_features->begin()[i].forward(f);
      if (tap < m_taps.size() && m_taps[tap] == i) {
        parts.push_back(f.mean({2, 3}));
        ++tap;
      }
    }
    parts.push_back(f.mean({2, 3}));
    parts.push_back(m_imagenet->forward(f).mean({2, 3}));
    if (m_mode == DarknetFeatures::k_rich_max) parts.push_back(f.amax({2, 3}));
    return at::cat(parts, 1);
  }

  DarknetFeatures m_mode = DarknetFeatures::k_both;
  std::vector<std::size_t> m_taps;
  int m_tap_channels = 0;
  nn::Sequential m_features{nullptr};
  nn::Conv2d m_imagenet{nullptr};
  nn::Linear m_head{nullptr};
};

}  // namespace

std::string describe_head_input(GraphBuilder& g, DarknetFeatures mode,
                                std::vector<std::string> taps, const std::string& pooled,
                                const std::function<std::string()>& logits,
                                const std::function<std::string()>& peak) {
  if (mode == DarknetFeatures::k_pooled) return pooled;
  std::string l = logits();
  if (mode == DarknetFeatures::k_logits) return l;
  taps.push_back(pooled);
  taps.push_back(l);
  if (mode == DarknetFeatures::k_rich_max) taps.push_back(peak());
  return g.add("Concat", taps, {{"axis", {1}}});
}

DarknetFeatures parse_darknet_features(const std::string& name) {
  if (name == "pooled") return DarknetFeatures::k_pooled;
  if (name == "logits") return DarknetFeatures::k_logits;
  if (name == "both") return DarknetFeatures::k_both;
  if (name == "rich") return DarknetFeatures::k_rich;
  if (name == "rich-max") return DarknetFeatures::k_rich_max;
  throw UsageError("pretrained features must be pooled|logits|both|rich|rich-max, not '" + name +
                   "'");
}

std::string to_string(DarknetFeatures features) {
  switch (features) {
    case DarknetFeatures::k_pooled:
      return "pooled";
    case DarknetFeatures::k_logits:
      return "logits";
    case DarknetFeatures::k_both:
      return "both";
    case DarknetFeatures::k_rich:
      return "rich";
    case DarknetFeatures::k_rich_max:
      return "rich-max";
  }
  return "both";
}

const std::vector<std::string>& architecture_names() {
  static const std::vector<std::string> k_names{
      "baseline",           "compact",           "darknet", "efficientnet-lite0",
      "efficientnet-lite1", "efficientnet-lite2"};
  return k_names;
}

Network build_network(const std::string& architecture, int input_size,
                      const nlohmann::json& params) {
  if (architecture == "baseline") return baseline(input_size);
  if (architecture == "compact") return compact(params);
  if (architecture == "darknet") {
    if (!params.contains("layers"))
      throw UsageError(
          "darknet needs its topology; set model.pretrained to the Tiny Darknet folder");
    try {
      return std::make_shared<DarknetNet>(params);
    } catch (const nlohmann::json::exception& e) {
      throw UsageError(std::string("darknet topology is malformed: ") + e.what());
    }
  }
  if (is_efficientnet_lite(architecture)) {
    if (!params.contains("blocks"))
      throw UsageError(architecture +
                       " needs its topology; set model.pretrained to its converted weights folder");
    return efficientnet_lite(params);
  }
  std::string allowed;
  for (const auto& name : architecture_names()) allowed += (allowed.empty() ? "" : "|") + name;
  throw UsageError("unknown architecture '" + architecture + "'; allowed: " + allowed);
}

void NetworkImpl::freeze_all_but_last_stages(int n) {
  std::vector<Modules> all = stages();
  if (n < 1 || n > static_cast<int>(all.size()))
    throw UsageError("this network has " + std::to_string(all.size()) +
                     " stages to fine-tune; model.finetune_stages must be 1.." +
                     std::to_string(all.size()) + " (or 0 for all)");
  m_frozen.clear();
  for (std::size_t s = 0; s + n < all.size(); ++s)
    for (auto& module : all[s]) {
      for (auto& p : module->parameters()) p.set_requires_grad(false);
      m_frozen.push_back(module);
    }
  train(is_training());
}

void NetworkImpl::keep_bn_statistics() {
  m_keep_bn = true;
  train(is_training());
}

void NetworkImpl::train(bool on) {
  torch::nn::Module::train(on);
  for (auto& module : m_frozen) module->eval();
  if (m_keep_bn)
    for (auto& module : modules(/*include_self=*/false))
      if (module->as<nn::BatchNorm2dImpl>()) module->eval();
}

at::Tensor NetworkImpl::imagenet_logits(const at::Tensor&) {
  throw UsageError("this architecture has no ImageNet head");
}

std::int64_t count_parameters(nn::Module& module) {
  std::int64_t n = 0;
  for (const auto& p : module.parameters()) n += p.numel();
  return n;
}

double forward_gflops(const std::string& architecture, int input_size,
                      const nlohmann::json& params) {
  Network net = build_network(architecture, input_size, params);
  net->eval();
  return net->flops(input_size) / 1e9;
}

Network folded_copy(NetworkImpl& net, const std::string& architecture, int input_size,
                    const nlohmann::json& params, const c10::Device& device) {
  Network copy = build_network(architecture, input_size, params);
  deserialize_module(*copy, serialize_module(net), architecture);
  prepare_for_inference(*copy, device);
  return copy;
}

void prepare_for_inference(NetworkImpl& net, const c10::Device& device) {
  net.eval();
  net.fuse_for_inference();
  net.to(device);
  if (device.is_cpu()) to_channels_last(net);
}

void to_channels_last(nn::Module& module) {
  torch::NoGradGuard no_grad;
  for (auto& p : module.parameters())
    if (p.dim() == 4) p.set_data(p.contiguous(at::MemoryFormat::ChannelsLast));
}

at::Tensor to_network_input(const at::Tensor& x, const c10::Device& device) {
  at::Tensor out = x.to(device);
  return device.is_cpu() ? out.contiguous(at::MemoryFormat::ChannelsLast) : out;
}

}  // namespace cd
