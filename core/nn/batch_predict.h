// Batched prediction over image files, shared by cd-predict and cd-eval:
// files are decoded and preprocessed on worker threads, run through the
// model in batches, and reported in input order, bad inputs included.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "domain/labels.h"
#include "nn/classifier.h"

namespace cd {

struct Prediction {
  std::string path;
  std::string error;  // empty when the image was classified
  double p_dog = 0;
  double ms = 0;  // decode + preprocess + this image's share of the forward pass
  Decision decision(double threshold) const { return decide(p_dog, threshold); }
};

// Fills p_dog or error for every entry without one; calls `done` in order as
// each batch completes.
void predict_all(Classifier& model, std::vector<Prediction>& items, int batch_size, int threads,
                 const std::function<void(const Prediction&)>& done);

}  // namespace cd
