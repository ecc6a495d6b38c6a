// Imports ImageNet Tiny Darknet from a TF.js layers model: model.json holds the
// Keras topology and a weightsManifest; the shards are raw little-endian
// float32. Pitfalls handled here: manifest groups are sorted by name
// (conv2d_10 before conv2d_2), so weights are looked up by name while walking
// the topology; kernels are HWIO and LibTorch wants OIHW; only the final 1x1
// conv has a bias; BN epsilon and LeakyReLU slope come from the topology.
#include <torch/nn/modules/conv.h>

#include <cstring>
#include <filesystem>
#include <map>

#include "nn/darknet_import.h"
#include "nn/nets.h"
#include "nn/weights.h"
#include "util/atomic_file.h"
#include "util/errors.h"

namespace cd {

namespace {

using json = nlohmann::json;

struct RawWeight {
  std::vector<int64_t> shape;
  std::vector<float> values;
};

std::map<std::string, RawWeight> read_weights(const std::string& dir, const json& manifest) {
  std::map<std::string, RawWeight> out;
  for (const auto& group : manifest) {
    std::string bytes;
    for (const auto& shard : group.at("paths"))
      bytes += read_file(dir + "/" + shard.get<std::string>());
    std::size_t offset = 0;
    for (const auto& w : group.at("weights")) {
      if (w.value("dtype", "float32") != "float32")
        throw ModelError(dir + ": weight " + w.at("name").get<std::string>() + " is not float32");
      RawWeight raw;
      raw.shape = w.at("shape").get<std::vector<int64_t>>();
      std::size_t count = 1;
      for (auto d : raw.shape) count *= static_cast<std::size_t>(d);
      if (offset + count * 4 > bytes.size())
        throw ModelError(dir + ": shard data ends before weight " +
                         w.at("name").get<std::string>());
      raw.values.resize(count);
      std::memcpy(raw.values.data(), bytes.data() + offset, count * 4);  // little-endian host
      offset += count * 4;
      out[w.at("name").get<std::string>()] = std::move(raw);
    }
  }
  return out;
}

at::Tensor take(std::map<std::string, RawWeight>& weights, const std::string& name,
                const std::string& dir) {
  auto it = weights.find(name);
  if (it == weights.end())
    throw ModelError(dir + ": model.json names weight '" + name + "' but no shard holds it");
  return torch::from_blob(it->second.values.data(), it->second.shape, torch::kFloat).clone();
}

const json& keras_layers(const json& model, const std::string& dir) {
  const json& config = model.at("modelTopology").at("model_config").at("config");
  if (config.is_array()) return config;
  if (config.contains("layers")) return config.at("layers");
  throw ModelError(dir + "/model.json: no layer list in modelTopology");
}

struct Conv {
  std::string name;
  int filters, kernel;
  bool bias;
  std::string bn;
};

// The Keras layer list, reduced to what build_network("darknet") needs.
struct Topology {
  std::vector<Conv> convs;
  json layers = json::array();  // {"type":"conv"|"pool", ...}, the classifier conv excluded
  double eps = 1e-3, slope = 0.1;
};

Topology read_topology(const json& layers, const std::string& dir) {
  Topology t;
  for (const auto& layer : layers) {
    std::string kind = layer.at("class_name");
    const json& c = layer.at("config");
    if (kind == "Conv2D") {
      auto k = c.at("kernel_size").get<std::vector<int>>();
      auto s = c.at("strides").get<std::vector<int>>();
      if (k[0] != k[1] || s[0] != 1 || s[1] != 1 || c.at("padding") != "same")
        throw ModelError(dir + ": only square, stride-1, 'same' convolutions are supported");
      t.convs.push_back({c.at("name"), c.at("filters"), k[0], c.at("use_bias"), ""});
      t.layers.push_back({{"type", "conv"}, {"filters", t.convs.back().filters}, {"kernel", k[0]}});
    } else if (kind == "BatchNormalization") {
      if (t.convs.empty()) throw ModelError(dir + ": batch norm before any convolution");
      t.convs.back().bn = c.at("name");
      t.eps = c.at("epsilon");
    } else if (kind == "LeakyReLU") {
      t.slope = c.at("alpha");
    } else if (kind == "MaxPooling2D") {
      t.layers.push_back({{"type", "pool"}});
    } else if (kind != "InputLayer" && kind != "GlobalAveragePooling2D" && kind != "Activation" &&
               kind != "Softmax") {
      throw ModelError(dir + ": layer type " + kind + " is not part of Tiny Darknet");
    }
  }
  if (t.convs.size() < 2 || !t.convs.back().bias || !t.convs.back().bn.empty())
    throw ModelError(
        dir +
        ": expected the last layer to be a 1x1 convolution with bias (the ImageNet classifier)");
  t.layers.erase(t.layers.end() - 1);  // the classifier conv is built separately
  return t;
}

// Copies the TF.js weights into the built network, checking every shape.
void copy_weights(NetworkImpl& net, const Topology& t, std::map<std::string, RawWeight>& weights,
                  const std::string& dir) {
  auto named = net.named_parameters(true);
  auto buffers = net.named_buffers(true);
  torch::NoGradGuard no_grad;
  auto copy = [&](at::Tensor target, const at::Tensor& source, const std::string& what) {
    if (target.sizes() != source.sizes())
      throw ModelError(dir + ": " + what + " has shape " + c10::str(source.sizes()) +
                       ", expected " + c10::str(target.sizes()));
    target.copy_(source);
  };
  // Walk the Sequential: each conv block is conv, BN, LeakyReLU; each pool one module.
  std::size_t index = 0, conv_index = 0;
  for (const auto& layer : t.layers) {
    if (layer.at("type") == "pool") {
      ++index;
      continue;
    }
    const Conv& conv = t.convs[conv_index++];
    std::string p = "features." + std::to_string(index),
                bn = "features." + std::to_string(index + 1);
    copy(named[p + ".weight"], take(weights, conv.name + "/kernel", dir).permute({3, 2, 0, 1}),
         conv.name);
    if (conv.bn.empty()) throw ModelError(dir + ": " + conv.name + " has no batch norm");
    copy(named[bn + ".weight"], take(weights, conv.bn + "/gamma", dir), conv.bn);
    copy(named[bn + ".bias"], take(weights, conv.bn + "/beta", dir), conv.bn);
    copy(buffers[bn + ".running_mean"], take(weights, conv.bn + "/moving_mean", dir), conv.bn);
    copy(buffers[bn + ".running_var"], take(weights, conv.bn + "/moving_variance", dir), conv.bn);
    index += 3;
  }
  const Conv& last = t.convs.back();
  copy(named["imagenet.weight"], take(weights, last.name + "/kernel", dir).permute({3, 2, 0, 1}),
       last.name);
  copy(named["imagenet.bias"], take(weights, last.name + "/bias", dir), last.name);
  for (auto& param : net.head_parameters()) param.zero_();
}

}  // namespace

PretrainedImport import_tfjs_darknet(const std::string& dir, DarknetFeatures features) {
  json model;
  try {
    model = json::parse(read_file(dir + "/model.json"));
  } catch (const IoError& e) {
    throw ModelError(std::string(e.what()) +
                     "; model.pretrained must name the Tiny Darknet folder");
  } catch (const json::exception& e) {
    throw ModelError(dir + "/model.json is not valid JSON");
  }
  try {
    Topology t = read_topology(keras_layers(model, dir), dir);
    auto weights = read_weights(dir, model.at("weightsManifest"));
    json params = {{"layers", t.layers},
                   {"leaky", t.slope},
                   {"bn_eps", t.eps},
                   {"classes", t.convs.back().filters},
                   {"features", to_string(features)}};
    Network net = build_network("darknet", 224, params);
    copy_weights(*net, t, weights, dir);
    return {params, serialize_module(*net)};
  } catch (const json::exception& e) {
    throw ModelError(dir + "/model.json: unexpected structure (" + e.what() + ")");
  }
}

}  // namespace cd
