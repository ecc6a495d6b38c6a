// cd-eval's engine: honest metrics on the held-out test split, the DVC plot
// files (confusion, ROC, precision-recall), misclassified.csv, and PNG
// renderings of the confusion matrix and ROC curve for people.
#pragma once

#include <string>
#include <vector>

#include "catdog/metrics.h"

namespace cd {

struct EvalParams {
  std::string model = "models/model.cdm";
  std::string data = "data/prepared";
  std::string output = "eval";
  int batch_size = 64;
  int threads = 0;
  std::string device = "cpu";
  std::string tta = "model";  // model | on | off
};

BinaryMetrics run_eval(const EvalParams& params);

// Draws with OpenCV; written atomically as PNG.
void render_confusion_png(const std::string& path, const BinaryMetrics& m);
void render_roc_png(const std::string& path, const std::vector<CurvePoint>& roc, double auc);

}  // namespace cd
