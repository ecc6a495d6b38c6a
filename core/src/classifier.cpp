#include "catdog/classifier.h"

#include <torch/cuda.h>
#include <torch/serialize/input-archive.h>
#include <torch/serialize/output-archive.h>

#include <sstream>

#include "catdog/errors.h"
#include "catdog/nets.h"

namespace cd {

std::string serialize_module(torch::nn::Module& module) {
  torch::serialize::OutputArchive archive;
  module.save(archive);
  std::ostringstream out;
  archive.save_to(out);
  return out.str();
}

void deserialize_module(torch::nn::Module& module, const std::string& payload, const std::string& origin) {
  try {
    torch::serialize::InputArchive archive;
    std::istringstream in(payload);
    archive.load_from(in);
    module.load(archive);
  } catch (const c10::Error& e) {
    std::string what = e.what_without_backtrace();
    throw ModelError(origin + ": weights do not match the architecture or are corrupt (" +
                     what.substr(0, what.find('\n')) + ")");
  }
}

DeviceChoice parse_device(const std::string& name) {
  if (name == "cpu") return DeviceChoice::k_cpu;
  if (name == "cuda") return DeviceChoice::k_cuda;
  if (name == "auto") return DeviceChoice::k_auto;
  throw UsageError("device '" + name + "' is not known; allowed: cpu|cuda|auto");
}

namespace {

torch::Device resolve_device(DeviceChoice choice) {
  bool cuda = torch::cuda::is_available();
  if (choice == DeviceChoice::k_cuda && !cuda)
    throw UsageError("--device cuda was asked for, but no CUDA device is available to this LibTorch build; use --device cpu or auto");
  return (choice != DeviceChoice::k_cpu && cuda) ? torch::Device(torch::kCUDA) : torch::Device(torch::kCPU);
}

class TorchClassifier : public Classifier {
 public:
  TorchClassifier(ModelMeta meta, Network net, torch::Device device)
      : m_meta(std::move(meta)), m_net(std::move(net)), m_device(device) {
    m_net->eval();
    m_net->fuse_for_inference();
    m_net->to(m_device);
    if (m_device.is_cpu()) to_channels_last(*m_net);
  }

  const ModelMeta& meta() const override { return m_meta; }
  void set_tta_flip(bool on) override { m_meta.tta_flip = on; }

  std::vector<float> predict(const at::Tensor& batch) override {
    c10::InferenceMode guard;
    at::Tensor x = batch.to(m_device);
    if (m_device.is_cpu()) x = x.contiguous(at::MemoryFormat::ChannelsLast);
    at::Tensor p = torch::sigmoid(m_net->forward(x).view({-1}).to(torch::kFloat));
    if (m_meta.tta_flip) p = (p + torch::sigmoid(m_net->forward(x.flip({3})).view({-1}))) / 2;
    p = p.to(torch::kCPU).contiguous();
    return std::vector<float>(p.data_ptr<float>(), p.data_ptr<float>() + p.numel());
  }

 private:
  ModelMeta m_meta;
  Network m_net;
  torch::Device m_device;
};

}  // namespace

void apply_tta_choice(Classifier& model, const std::string& choice) {
  if (choice == "on") model.set_tta_flip(true);
  else if (choice == "off") model.set_tta_flip(false);
  else if (choice != "model") throw UsageError("tta must be model|on|off, not '" + choice + "'");
}

torch::Device select_device(DeviceChoice choice) { return resolve_device(choice); }

std::unique_ptr<Classifier> load_classifier(const std::string& path, DeviceChoice device) {
  FileParts parts = read_parts(path, FileKind::k_model);
  ModelMeta meta = meta_from_json(parts.meta, path);
  Network net;
  try {
    net = build_network(meta.architecture, meta.preprocess.size, meta.arch_params);
  } catch (const UsageError& e) {
    throw ModelError(path + ": " + e.what());
  }
  deserialize_module(*net, parts.payload, path);
  return std::make_unique<TorchClassifier>(std::move(meta), std::move(net), resolve_device(device));
}

}  // namespace cd
