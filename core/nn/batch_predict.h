// Batched prediction over image files, shared by cd-predict and cd-eval:
// files are decoded and preprocessed on worker threads, run through the
// model in batches, and reported in input order, bad inputs included.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "nn/classifier.h"
#include "runtime/predictor.h"

namespace cd {

// runtime/predictor.h's predict_all, for a classifier already loaded.
void predict_all(Classifier& model, std::vector<Prediction>& items, int batch_size, int threads,
                 const std::function<void(const Prediction&)>& done);

}  // namespace cd
