// cd-eval: measure a model on the held-out test split and write DVC metrics and plots.
#include "cd-eval/evaluate.h"
#include "nn/compute.h"
#include "util/config.h"
#include "util/errors.h"
#include "util/options.h"

namespace {

int eval_main(int argc, char** argv) {
  cd::EvalParams params;
  cd::CommonOptions common;
  std::string device = "cpu", tta = "model";
  cd::Config config(
      "cd-eval", "Evaluate a model on test.csv: metrics, DVC plots, misclassified.csv and PNGs.");
  config.set_default_config_file("configs/eval.yaml");
  config.add_string("model", params.model, "model file from cd-train");
  config.add_string("data", params.data, "folder holding test.csv from cd-prepare");
  config.add_string("output", params.output,
                    "folder for metrics.json, plots/, misclassified.csv and PNGs");
  config.add_int("batch_size", params.batch_size, "images per forward pass", 1, 4096, "batch-size");
  config.add_choice("tta", tta, "test-time mirror averaging: as the model file says, or forced",
                    {"model", "on", "off"});
  config.add_choice("device", device, "where to run the model", {"cpu", "cuda", "auto"});
  config.add_string("int8_calibration", params.int8_calibration,
                    "measure INT8: calibrate on these training images (a manifest such as "
                    "data/prepared/train.csv), then run the convolutions on 8-bit data; "
                    "empty: INT8 if the model file carries its calibration (the pipeline's does), "
                    "else f32",
                    "int8-calibration");
  config.add_int("int8_images", params.int8_images,
                 "INT8: how many of the calibration manifest's images, spread over it", 1, 100000,
                 "int8-images");
  config.add_string("int8_model", params.int8_model,
                    "INT8: also write the calibrated model here (a model file that cd-predict, "
                    "cd-serve and cd-eval then run in INT8); empty: none",
                    "int8-model");
  config.add_bool("f32", params.f32,
                  "measure the model in f32 even where its file carries INT8 calibration (as the "
                  "pipeline's model.cdm does), to see what INT8 changes",
                  "f32");
  cd::add_common_options(config, common);
  if (config.parse(argc, argv) == cd::ParseOutcome::k_exit_ok) return 0;
  params.device = cd::parse_device(device);
  params.tta = cd::parse_tta(tta);
  params.threads = cd::apply_common_options(common);
  cd::set_compute_threads(params.threads);
  cd::run_eval(params);
  return 0;
}

}  // namespace

int main(int argc, char** argv) { return cd::run_tool("cd-eval", argc, argv, eval_main); }
