// Batched prediction over files, shared by cd-predict and cd-eval: inputs
// are decoded and preprocessed on worker threads, run through the model in
// batches, and reported in input order, bad inputs included.
#pragma once

#include <functional>
#include <iosfwd>
#include <string>
#include <vector>

#include "catdog/classifier.h"

namespace cd {

struct Prediction {
  std::string path;
  std::string error;  // empty when the image was classified
  double p_dog = 0;
  double ms = 0;  // decode + preprocess + this image's share of the forward pass
  const char* label(double threshold) const { return p_dog >= threshold ? "dog" : "cat"; }
  double confidence(double threshold) const { return p_dog >= threshold ? p_dog : 1 - p_dog; }
};

// Expands directories (recursively, sorted, image extensions only) and "-"
// (one path per line from `in`). Problems become Predictions with an error.
std::vector<Prediction> expand_inputs(const std::vector<std::string>& args, std::istream& in);

// Fills p_dog or error for every entry without one; calls `done` in order as
// each batch completes.
void predict_all(Classifier& model, std::vector<Prediction>& items, int batch_size, int threads,
                 const std::function<void(const Prediction&)>& done);

}  // namespace cd
