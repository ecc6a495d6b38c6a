// The one inference interface every tool uses: a loaded model turns a batch
// of preprocessed images into P(dog). A second runtime (ONNX through OpenCV's
// DNN module) can be added behind it without touching the tools.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "domain/model_file.h"
#include "nn/compute.h"
#include "nn/nets.h"
#include "runtime/predictor.h"

namespace at {
class Tensor;
}

namespace cd {

class Classifier {
 public:
  virtual ~Classifier() = default;
  virtual const ModelMeta& meta() const = 0;
  // batch: float [N,3,S,S] from preprocess(); returns N probabilities of dog.
  virtual std::vector<float> predict(const at::Tensor& batch) = 0;
  // Overrides the model's own test-time flip setting (cd-eval --tta on|off).
  virtual void set_tta_flip(bool on) = 0;
};

// --tta (TtaChoice, runtime/predictor.h) on a classifier.
void apply_tta_choice(Classifier& model, TtaChoice choice);

// A classifier behind the runtime interface (plain float batches), owned
// or borrowed.
std::unique_ptr<Predictor> as_predictor(std::unique_ptr<Classifier> model);
std::unique_ptr<Predictor> borrow_as_predictor(Classifier& model);

// A catdog model file on LibTorch behind the runtime interface: what the
// LibTorch module (torch_module.cpp) hands to open_predictor(). Sets the
// compute threads. Throws ModelError or UsageError.
std::unique_ptr<Predictor> open_torch_predictor(const std::string& path,
                                                const RuntimeOptions& options);

// A model file's metadata and its network with the weights loaded and
// checked finite (training mode, BN not folded). Throws ModelError.
struct LoadedNetwork {
  ModelMeta meta;
  Network net;
};
LoadedNetwork load_network(const std::string& path);
// The network of `meta` with `weights` (a LibTorch archive), checked finite.
Network network_from(const ModelMeta& meta, const std::string& weights, const std::string& origin);

// The model's folded inference graph (runtime/graph.h) as the model file
// holds it: the network's logits through a Sigmoid to "p_dog"; test-time
// flip is the runtime's. Throws ModelError.
std::string inference_graph_bytes(const ModelMeta& meta, const std::string& weights,
                                  const std::string& origin);
// A whole model file: metadata, weights and the inference graph.
std::string pack_model(ModelMeta meta, const std::string& weights, const std::string& origin);

// Throws ModelError for a missing, corrupt or mismatched file. An .onnx file
// (from cd-export) runs on catdog's oneDNN runtime behind the same
// interface, with LibTorch's compute thread count.
std::unique_ptr<Classifier> load_classifier(const std::string& path,
                                            DeviceChoice device = DeviceChoice::k_cpu);

}  // namespace cd
