#include "nn/classifier.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/nn/module.h>
#include <torch/utils.h>

#include <cmath>

#include "nn/buffer_cache.h"
#include "nn/graph.h"
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

void apply_tta_choice(Classifier& model, TtaChoice choice) {
  if (choice != TtaChoice::k_model) model.set_tta_flip(choice == TtaChoice::k_on);
}

namespace {

// Float batches in, through the classifier's tensors.
class ClassifierPredictor : public Predictor {
 public:
  ClassifierPredictor(std::unique_ptr<Classifier> owned, Classifier& model)
      : m_owned(std::move(owned)), m_model(model) {}
  const ModelMeta& meta() const override { return m_model.meta(); }
  void set_tta_flip(bool on) override { m_model.set_tta_flip(on); }
  std::string runtime() const override { return "libtorch"; }
  CacheBytes cache_bytes() const override {
    BufferCacheStats stats = buffer_cache_stats();
    return {stats.mapped_bytes, stats.idle_bytes};
  }
  std::vector<float> predict(const float* images, std::size_t n) override {
    int s = m_model.meta().preprocess.size;
    at::Tensor batch = at::from_blob(const_cast<float*>(images),
                                     {static_cast<std::int64_t>(n), 3, s, s}, at::kFloat);
    return m_model.predict(batch);
  }

 private:
  std::unique_ptr<Classifier> m_owned;
  Classifier& m_model;
};

// A runtime's float interface behind the tensor one (an .onnx model in the
// tools that work on tensors: cd-eval, cd-serve).
class PredictorClassifier : public Classifier {
 public:
  explicit PredictorClassifier(std::unique_ptr<Predictor> predictor)
      : m_predictor(std::move(predictor)) {}
  const ModelMeta& meta() const override { return m_predictor->meta(); }
  void set_tta_flip(bool on) override { m_predictor->set_tta_flip(on); }
  std::vector<float> predict(const at::Tensor& batch) override {
    at::Tensor x = batch.to(at::kCPU, at::kFloat).contiguous();
    return m_predictor->predict(x.data_ptr<float>(), static_cast<std::size_t>(x.size(0)));
  }

 private:
  std::unique_ptr<Predictor> m_predictor;
};

}  // namespace

std::unique_ptr<Predictor> as_predictor(std::unique_ptr<Classifier> model) {
  Classifier& ref = *model;
  return std::make_unique<ClassifierPredictor>(std::move(model), ref);
}

std::unique_ptr<Predictor> borrow_as_predictor(Classifier& model) {
  return std::make_unique<ClassifierPredictor>(nullptr, model);
}

std::unique_ptr<Predictor> open_torch_predictor(const std::string& path,
                                                const RuntimeOptions& options) {
  if (options.threads > 0) set_compute_threads(options.threads);
  if (options.tensor_cache_bytes > 0) install_buffer_cache(options.tensor_cache_bytes);
  return as_predictor(load_classifier(path, parse_device(options.device)));
}

Network network_from(const ModelMeta& meta, const std::string& weights, const std::string& origin) {
  Network net;
  try {
    net = build_network(meta.architecture, meta.preprocess.size, meta.arch_params);
  } catch (const UsageError& e) {
    throw ModelError(origin + ": " + e.what());
  }
  deserialize_module(*net, weights, origin);
  // A NaN or Inf anywhere in the weights makes every answer meaningless.
  for (const auto& item : net->named_parameters(true))
    if (!at::isfinite(item.value()).all().item<bool>())
      throw ModelError(origin + ": weight '" + item.key() +
                       "' holds NaN or Inf; the file is corrupt");
  for (const auto& item : net->named_buffers(true))
    if (item.value().is_floating_point() && !at::isfinite(item.value()).all().item<bool>())
      throw ModelError(origin + ": buffer '" + item.key() +
                       "' holds NaN or Inf; the file is corrupt");
  return net;
}

LoadedNetwork load_network(const std::string& path) {
  FileParts parts = read_parts(path, FileKind::k_model);
  ModelMeta meta = meta_from_json(parts.meta, path);
  Network net = network_from(meta, parts.payload, path);
  return {std::move(meta), std::move(net)};
}

std::string inference_graph_bytes(const ModelMeta& meta, const std::string& weights,
                                  const std::string& origin) {
  torch::NoGradGuard no_grad;
  Network net = network_from(meta, weights, origin);
  prepare_for_inference(*net, c10::Device(c10::kCPU));
  GraphBuilder g;
  std::string logits = net->describe(g, g.graph.input, meta.preprocess.size);
  g.add("Sigmoid", {logits});
  g.graph.nodes.back().output = "p_dog";
  g.graph.output = "p_dog";
  return write_graph(to_inference_graph(g.graph));
}

std::string pack_model(ModelMeta meta, const std::string& weights, const std::string& origin) {
  meta.format_version = k_model_format_version;
  std::string graph = inference_graph_bytes(meta, weights, origin);
  return pack_file({FileKind::k_model, meta_to_json(meta), weights, std::move(graph)});
}

std::unique_ptr<Classifier> load_classifier(const std::string& path, DeviceChoice device) {
  if (is_onnx_path(path)) {
    if (device == DeviceChoice::k_cuda)
      throw UsageError(
          "an .onnx model runs on the CPU (catdog's oneDNN runtime); use the .cdm model "
          "file for --device cuda");
    return std::make_unique<PredictorClassifier>(open_onnx_predictor(path, at::get_num_threads()));
  }
  LoadedNetwork loaded = load_network(path);
  return std::make_unique<TorchClassifier>(std::move(loaded.meta), std::move(loaded.net),
                                           select_device(device));
}

}  // namespace cd
