// The one inference interface every tool uses: a loaded model turns a batch
// of preprocessed images into P(dog). A second runtime (ONNX through OpenCV's
// DNN module) can be added behind it without touching the tools.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "catdog/model_file.h"

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

// "model" keeps the file's setting; "on" / "off" override it.
void apply_tta_choice(Classifier& model, const std::string& choice);

enum class DeviceChoice { k_cpu, k_cuda, k_auto };
DeviceChoice parse_device(const std::string& name);  // UsageError

std::unique_ptr<Classifier> load_classifier(const std::string& path,
                                            DeviceChoice device = DeviceChoice::k_cpu);

}  // namespace cd
