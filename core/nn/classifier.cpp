#include "nn/classifier.h"

#include <ATen/ATen.h>
#include <torch/nn/module.h>

#include <cmath>

#include "nn/nets.h"
#include "nn/weights.h"
#include "util/errors.h"

namespace cd {

namespace {

class TorchClassifier : public Classifier {
 public:
  TorchClassifier(ModelMeta meta, Network net, c10::Device device)
      : m_meta(std::move(meta)), m_net(std::move(net)), m_device(device) {
    prepare_for_inference(*m_net, m_device);
  }

  const ModelMeta& meta() const override { return m_meta; }
  void set_tta_flip(bool on) override { m_meta.tta_flip = on; }

  std::vector<float> predict(const at::Tensor& batch) override {
    c10::InferenceMode guard;
    at::Tensor x = to_network_input(batch, m_device);
    at::Tensor p;
    if (m_meta.tta_flip) {  // both views in one forward pass: one batch of 2N beats two of N
      const std::int64_t n = x.size(0);
      p = at::sigmoid(m_net->forward(at::cat({x, x.flip({3})})).view({-1}).to(at::kFloat));
      p = (p.slice(0, 0, n) + p.slice(0, n)) / 2;
    } else {
      p = at::sigmoid(m_net->forward(x).view({-1}).to(at::kFloat));
    }
    p = p.to(at::kCPU).contiguous();
    std::vector<float> out(p.data_ptr<float>(), p.data_ptr<float>() + p.numel());
    for (float v : out)
      if (!std::isfinite(v))
        throw ModelError(
            "the model produced a non-finite probability; its weights or metadata "
            "are corrupt, so no answer is given (retrain or re-copy the file)");
    return out;
  }

 private:
  ModelMeta m_meta;
  Network m_net;
  c10::Device m_device;
};

}  // namespace

TtaChoice parse_tta(const std::string& name) {
  if (name == "model") return TtaChoice::k_model;
  if (name == "on") return TtaChoice::k_on;
  if (name == "off") return TtaChoice::k_off;
  throw UsageError("tta must be model|on|off, not '" + name + "'");
}

void apply_tta_choice(Classifier& model, TtaChoice choice) {
  if (choice != TtaChoice::k_model) model.set_tta_flip(choice == TtaChoice::k_on);
}

LoadedNetwork load_network(const std::string& path) {
  FileParts parts = read_parts(path, FileKind::k_model);
  ModelMeta meta = meta_from_json(parts.meta, path);
  Network net;
  try {
    net = build_network(meta.architecture, meta.preprocess.size, meta.arch_params);
  } catch (const UsageError& e) {
    throw ModelError(path + ": " + e.what());
  }
  deserialize_module(*net, parts.payload, path);
  // A NaN or Inf anywhere in the weights makes every answer meaningless.
  for (const auto& item : net->named_parameters(true))
    if (!at::isfinite(item.value()).all().item<bool>())
      throw ModelError(path + ": weight '" + item.key() +
                       "' holds NaN or Inf; the file is corrupt");
  for (const auto& item : net->named_buffers(true))
    if (item.value().is_floating_point() && !at::isfinite(item.value()).all().item<bool>())
      throw ModelError(path + ": buffer '" + item.key() +
                       "' holds NaN or Inf; the file is corrupt");
  return {std::move(meta), std::move(net)};
}

std::unique_ptr<Classifier> load_classifier(const std::string& path, DeviceChoice device) {
  LoadedNetwork loaded = load_network(path);
  return std::make_unique<TorchClassifier>(std::move(loaded.meta), std::move(loaded.net),
                                           select_device(device));
}

}  // namespace cd
