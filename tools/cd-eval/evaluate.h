// cd-eval's engine: honest metrics on the held-out test split, the DVC plot
// files (confusion, ROC, precision-recall), misclassified.csv, and PNG
// renderings of the confusion matrix and ROC curve for people.
#pragma once

#include <string>
#include <vector>

#include "domain/labels.h"
#include "domain/metrics.h"
#include "nn/compute.h"
#include "runtime/predictor.h"

namespace cd {

struct EvalParams {
  std::string model = k_default_model_path;
  std::string data = "data/prepared";
  std::string output = "eval";
  int batch_size = 64;
  int threads = 0;
  DeviceChoice device = DeviceChoice::k_cpu;
  TtaChoice tta = TtaChoice::k_model;
  // INT8: a manifest of training images (train.csv) to calibrate on; the
  // model then runs its convolutions on 8-bit data. "": f32.
  std::string int8_calibration;
  int int8_images = 256;   // how many of them, spread over the manifest
  std::string int8_model;  // where to write the calibrated model file too; "": nowhere
  bool f32 = false;        // a file that carries INT8 calibration measured in f32 all the same
};

BinaryMetrics run_eval(const EvalParams& params);

// Draws with OpenCV; written atomically as PNG.
void render_confusion_png(const std::string& path, const BinaryMetrics& m);
void render_roc_png(const std::string& path, const std::vector<CurvePoint>& roc, double auc);

}  // namespace cd
