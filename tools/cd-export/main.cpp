// cd-export: write a trained model file in another format (ONNX) for other
// runtimes, or rewrite an older model file with its inference graph (cdm).
#include <spdlog/spdlog.h>

#include <filesystem>

#include "cd-export/onnx_export.h"
#include "domain/labels.h"
#include "domain/model_file.h"
#include "nn/compute.h"
#include "runtime/predictor.h"
#include "util/config.h"
#include "util/errors.h"
#include "util/options.h"

namespace {

// What cd-export writes is f32: say so where the model file ran in INT8.
void warn_f32(const std::string& model, const std::string& output) {
  if (cd::carries_int8_calibration(model))
    spdlog::warn(
        "{} carries INT8 calibration, {} does not: it runs in f32 (calibrate a .cdm again with "
        "cd-eval --int8-calibration data/prepared/train.csv --int8-model FILE)",
        model, output);
}

int export_main(int argc, char** argv) {
  std::string model = cd::k_default_model_path, format = "onnx", output;
  cd::CommonOptions common;
  cd::Config config("cd-export",
                    "Export a model file for other runtimes: ONNX (opset 10) with batch norm "
                    "folded, test-time flip in the graph when the model uses it, and the model's "
                    "metadata in metadata_props.");
  config.add_string("model", model, "model file from cd-train");
  config.add_choice("format", format,
                    "output format: onnx, or cdm (the model file in the current format, with the "
                    "inference graph cd-predict and cd-serve run)",
                    {"onnx", "cdm"});
  config.add_string("output", output,
                    "file to write; default: the model's path with .onnx (onnx), or the model "
                    "file itself, rewritten in place (cdm)");
  cd::add_common_options(config, common);
  if (config.parse(argc, argv) == cd::ParseOutcome::k_exit_ok) return 0;
  cd::set_compute_threads(cd::apply_common_options(common));
  if (format == "cdm") {
    if (output.empty()) output = model;
    std::size_t bytes = cd::upgrade_model(model, output);
    spdlog::info("wrote {} ({} bytes, model file format {} with its inference graph)", output,
                 bytes, cd::k_model_format_version);
    warn_f32(model, output);
    return 0;
  }
  if (output.empty()) output = std::filesystem::path(model).replace_extension(".onnx").string();
  if (std::filesystem::path(output).extension() != ".onnx")
    throw cd::UsageError("--output '" + output +
                         "' must end in .onnx, the extension runtimes "
                         "(and cd-predict) go by");
  cd::ExportSummary s = cd::export_onnx(model, output);
  spdlog::info("wrote {} ({} bytes, {} nodes, {} constants, test-time flip {})", output, s.bytes,
               s.nodes, s.initializers, s.tta_in_graph ? "in the graph" : "off");
  warn_f32(model, output);
  return 0;
}

}  // namespace

int main(int argc, char** argv) { return cd::run_tool("cd-export", argc, argv, export_main); }
