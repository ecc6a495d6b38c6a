// cd-predict: classify images for shell scripts. One line per image on
// stdout; one line per bad input on stderr; exit 3 when some were bad.
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <nlohmann/json.hpp>

#include "cd-predict/inputs.h"
#include "runtime/predictor.h"
#include "util/config.h"
#include "util/errors.h"
#include "util/options.h"
#include "util/strings.h"
#include "util/timing.h"

#include <spdlog/spdlog.h>

namespace {

struct PredictOptions {
  // The pipeline's model file, as cd-serve and cd-eval take it: in INT8 where
  // cd-train calibrated it (its .onnx export is f32).
  std::string model = cd::k_default_model_path;
  bool json = false;
  bool quiet = false;
  int batch_size = 32;
  std::string device = "cpu";
  std::string tta = "model";
  std::string shard;
  std::vector<std::string> inputs;
};

void print(const cd::Prediction& p, const PredictOptions& o, double threshold) {
  if (!p.error.empty()) {
    std::fflush(stdout);
    std::fprintf(stderr, "cd-predict: %s: %s\n", cd::escape_tsv(p.path).c_str(), p.error.c_str());
    return;
  }
  cd::Decision d = p.decision(threshold);
  const char* label = d.name().c_str();
  if (o.quiet) {
    std::printf("%s\n", label);
  } else if (o.json) {
    nlohmann::ordered_json j{{"path", p.path},
                             {"class_label", label},
                             {"probability", d.confidence},
                             {"p_dog", p.p_dog},
                             {"prediction_time_ms", p.ms}};
    std::printf("%s\n", j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace).c_str());
  } else {
    std::printf("%s\t%s\t%.4f\n", cd::escape_tsv(p.path).c_str(), label, d.confidence);
  }
}

int predict_main(int argc, char** argv) {
  double t_main = cd::ms_since_process_start();
  PredictOptions o;
  cd::CommonOptions common;
  common.log_level = "warn";
  cd::Config config(
      "cd-predict",
      "Classify images as cat or dog.\nOutput: PATH<TAB>LABEL<TAB>PROBABILITY per image.");
  config.add_string("model", o.model,
                    "model file from cd-train or cd-export (.cdm or .onnx); unset: "
                    "models/model.cdm, the pipeline's, in INT8 where it carries its calibration");
  config.add_bool("json", o.json,
                  "JSON Lines: path, class_label, probability, p_dog, prediction_time_ms");
  config.add_bool("quiet", o.quiet, "print the label alone");
  config.add_int("batch_size", o.batch_size, "images per forward pass", 1, 4096, "batch-size");
  config.add_choice("tta", o.tta, "test-time mirror averaging: as the model file says, or forced",
                    {"model", "on", "off"});
  config.add_choice("device", o.device, "where to run the model", {"cpu", "cuda", "auto"});
  config.add_string("shard", o.shard,
                    "I/N: only the I-th of N equal contiguous parts of the inputs (0-based); N "
                    "alone takes I from JOB_COMPLETION_INDEX");
  config.add_positionals("IMAGE", o.inputs,
                         "image files, directories, manifests (.csv from cd-prepare), or - to "
                         "read paths from stdin");
  cd::add_common_options(config, common);
  if (config.parse(argc, argv) == cd::ParseOutcome::k_exit_ok) return 0;
  if (o.json && o.quiet) throw cd::UsageError("--json and --quiet exclude each other");
  if (o.inputs.empty())
    throw cd::UsageError("no images given; pass files, directories or - for stdin");
  int threads = cd::apply_common_options(common);

  std::vector<cd::Prediction> items = cd::expand_inputs(o.inputs, std::cin);
  if (!o.shard.empty())
    items = cd::take_shard(std::move(items),
                           cd::parse_shard(o.shard, std::getenv("JOB_COMPLETION_INDEX")));
  double t_args = cd::ms_since_process_start();
  auto model = cd::open_predictor(o.model, {o.device, threads});
  double t_model = cd::ms_since_process_start();
  cd::apply_tta_choice(*model, cd::parse_tta(o.tta));
  double threshold = model->meta().threshold;
  bool any_bad = false;
  double t_first = 0;
  cd::predict_all(*model, items, o.batch_size, threads, [&](const cd::Prediction& p) {
    any_bad |= !p.error.empty();
    print(p, o, threshold);
    if (t_first == 0) t_first = cd::ms_since_process_start();
  });
  std::fflush(stdout);
  // --log-level debug shows where start-up goes; "before main" is dynamic
  // loading plus LibTorch's static initialisers (operator registration).
  spdlog::debug(
      "timing ms: before main {:.0f}, options {:.0f}, model load {:.0f} ({}), first result {:.0f} "
      "(decode + forward), total {:.0f}",
      t_main, t_args - t_main, t_model - t_args, model->runtime(), t_first - t_model,
      cd::ms_since_process_start());
  const int code = any_bad ? static_cast<int>(cd::ExitCode::k_partial) : 0;
#if !defined(__SANITIZE_ADDRESS__) && !defined(__SANITIZE_THREAD__)
  // Everything is printed: the process ends here, and the kernel takes its
  // memory back at once. Destroying the model would unmap oneDNN's ~70 JIT
  // kernels one by one, each unmap interrupting the other core: 4 ms of a
  // 55 ms cold start. The sanitizer builds return, for their leak checks.
  if (std::fflush(nullptr) == 0) std::_Exit(code);
#endif
  return code;
}

}  // namespace

int main(int argc, char** argv) { return cd::run_tool("cd-predict", argc, argv, predict_main); }
