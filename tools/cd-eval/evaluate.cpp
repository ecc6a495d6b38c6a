#include "cd-eval/evaluate.h"

#include <algorithm>
#include <cmath>
#include <memory>
#include <nlohmann/json.hpp>

#include <spdlog/spdlog.h>

#include "domain/manifest.h"
#include "nn/batch_predict.h"
#include "nn/classifier.h"
#include "util/atomic_file.h"
#include "util/errors.h"
#include "util/progress.h"

namespace cd {

namespace {

using json = nlohmann::ordered_json;

json finite_or_null(double v) { return std::isfinite(v) ? json(v) : json(nullptr); }

json curve_json(const std::vector<CurvePoint>& curve, const char* x, const char* y) {
  json points = json::array();
  for (const auto& p : curve)
    points.push_back({{x, p.x}, {y, p.y}, {"threshold", std::min(1.0, p.threshold)}});
  return points;
}

}  // namespace

namespace {

// The test split's answers, in manifest order, ready for metrics and plots.
struct Scored {
  std::vector<int> labels;
  std::vector<double> scores;
  json confusion = json::array();
  std::string misclassified = "path,label,predicted,p_dog\n";
};

Scored score(const std::vector<Sample>& samples, const std::vector<Prediction>& items,
             double threshold, const std::string& test_csv) {
  Scored s;
  for (std::size_t i = 0; i < items.size(); ++i) {
    if (!items[i].error.empty())
      throw DataError(test_csv + " lists '" + items[i].path + "': " + items[i].error +
                      "; rerun cd-prepare");
    s.labels.push_back(samples[i].label);
    s.scores.push_back(items[i].p_dog);
    std::string actual = class_names()[samples[i].label],
                predicted = items[i].decision(threshold).name();
    s.confusion.push_back({{"actual", actual}, {"predicted", predicted}});
    if (actual != predicted) {
      char p[32];
      std::snprintf(p, sizeof p, "%.6f", items[i].p_dog);
      s.misclassified +=
          csv_escape(samples[i].path) + "," + actual + "," + predicted + "," + p + "\n";
    }
  }
  return s;
}

json metrics_json(const BinaryMetrics& m, double threshold, bool tta_flip) {
  json metrics;
  metrics["accuracy"] = m.accuracy;
  metrics["precision"] = m.precision;
  metrics["recall"] = m.recall;
  metrics["f1"] = m.f1;
  metrics["roc_auc"] = finite_or_null(m.roc_auc);
  metrics["log_loss"] = m.log_loss;
  metrics["n"] = m.n;
  metrics["tp"] = m.tp;
  metrics["fp"] = m.fp;
  metrics["tn"] = m.tn;
  metrics["fn"] = m.fn;
  metrics["threshold"] = threshold;
  metrics["tta_flip"] = tta_flip;
  return metrics;
}

}  // namespace

namespace {

// The model on catdog's oneDNN runtime, calibrated on `int8_images` of the
// calibration manifest (every k-th, so both classes and the whole manifest
// are seen), then quantised.
std::unique_ptr<Predictor> int8_model(const EvalParams& params, std::size_t& used) {
  if (params.device == DeviceChoice::k_cuda)
    throw UsageError(
        "--int8-calibration runs on the CPU (catdog's oneDNN runtime); drop --device cuda");
  RuntimeOptions options;
  options.threads = params.threads;
  std::unique_ptr<Predictor> model = open_predictor(params.model, options);
  apply_tta_choice(*model, params.tta);
  std::vector<std::string> paths;
  for (const Sample& s : read_manifest(params.int8_calibration)) paths.push_back(s.path);
  used = calibrate_int8(*model, paths, params.int8_images, params.batch_size, params.threads,
                        params.int8_calibration);
  spdlog::info("int8: calibrated on {} images of {}", used, params.int8_calibration);
  if (!params.int8_model.empty()) {
    model->write_int8_model(params.int8_model);
    spdlog::info("int8: wrote {}, which cd-predict, cd-serve and cd-eval run in INT8",
                 params.int8_model);
  }
  return model;
}

// The model as cd-eval measures it: calibrated here (--int8-calibration); a
// model file that carries its calibration (cd-train's, or --int8-model's) on
// the oneDNN runtime, in INT8 as cd-predict and cd-serve run it; otherwise,
// or with --f32, in f32 on LibTorch.
std::unique_ptr<Predictor> open_model(const EvalParams& params, std::size_t& calibrated_on) {
  if (!params.int8_model.empty() && params.int8_calibration.empty())
    throw UsageError("--int8-model writes a calibrated model: give --int8-calibration too");
  if (!params.int8_model.empty() && is_onnx_path(params.model))
    throw UsageError(
        "an .onnx export cannot carry INT8 calibration; give the .cdm model file it was "
        "exported from to --model");
  if (params.f32 && (!params.int8_calibration.empty() || !params.int8_model.empty()))
    throw UsageError(
        "--f32 measures the model without INT8: drop --int8-calibration and --int8-model");
  if (!params.int8_calibration.empty()) return int8_model(params, calibrated_on);
  std::unique_ptr<Predictor> model;
  if (params.device != DeviceChoice::k_cuda && !params.f32 &&
      carries_int8_calibration(params.model)) {
    RuntimeOptions options;
    options.threads = params.threads;
    model = open_predictor(params.model, options);
  } else {
    model = as_predictor(load_classifier(params.model, params.device));
  }
  apply_tta_choice(*model, params.tta);
  return model;
}

}  // namespace

BinaryMetrics run_eval(const EvalParams& params) {
  std::string test_csv = params.data + "/test.csv";
  std::vector<Sample> samples = read_manifest(test_csv);
  if (samples.empty()) throw DataError(test_csv + " has no images; the test split is empty");
  std::size_t calibrated_on = 0;
  std::unique_ptr<Predictor> model = open_model(params, calibrated_on);
  double threshold = model->meta().threshold;
  std::vector<Prediction> items;
  for (const auto& s : samples) items.push_back({s.path, ""});
  Progress progress("eval", items.size());
  predict_all(*model, items, params.batch_size, params.threads,
              [&](const Prediction&) { progress.advance(); });
  progress.finish();

  Scored scored = score(samples, items, threshold, test_csv);
  BinaryMetrics m = compute_metrics(scored.labels, scored.scores, threshold);
  auto roc = roc_curve(scored.labels, scored.scores);
  auto pr = pr_curve(scored.labels, scored.scores);
  const std::string& out = params.output;
  make_dirs(out + "/plots");
  json metrics = metrics_json(m, threshold, model->meta().tta_flip);
  if (!params.int8_calibration.empty())
    metrics["int8"] = {{"calibration", params.int8_calibration}, {"images", calibrated_on}};
  else if (model->int8())
    metrics["int8"] = {{"calibration", "carried by " + params.model}};
  write_file_atomic(out + "/metrics.json", metrics.dump(2) + "\n");
  write_file_atomic(out + "/plots/confusion.json", scored.confusion.dump(1) + "\n");
  write_file_atomic(out + "/plots/roc.json",
                    json{{"roc", curve_json(roc, "fpr", "tpr")}}.dump(1) + "\n");
  write_file_atomic(out + "/plots/prc.json",
                    json{{"prc", curve_json(pr, "recall", "precision")}}.dump(1) + "\n");
  write_file_atomic(out + "/misclassified.csv", scored.misclassified);
  render_confusion_png(out + "/confusion.png", m);
  render_roc_png(out + "/roc.png", roc, m.roc_auc);
  if (roc.empty()) spdlog::warn("{} holds one class only: ROC AUC is undefined", test_csv);
  spdlog::info(
      "test: n {} accuracy {:.4f} precision {:.4f} recall {:.4f} f1 {:.4f} auc {:.4f} log loss "
      "{:.4f}",
      m.n, m.accuracy, m.precision, m.recall, m.f1, m.roc_auc, m.log_loss);
  return m;
}

}  // namespace cd
