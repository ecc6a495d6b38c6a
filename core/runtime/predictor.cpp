#include "runtime/predictor.h"

#include <dlfcn.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>

#include <spdlog/spdlog.h>

#include "domain/image.h"
#include "runtime/executor.h"
#include "util/errors.h"
#include "util/mapped_file.h"
#include "util/parallel.h"
#include "util/progress.h"
#include "util/strings.h"

namespace cd {
class Predictor;
}

// The module's entry point. Weak: a binary that links the LibTorch runtime in
// (the sanitizer builds, whose leak checker cannot scan a dlopen'd LibTorch)
// has it, and then no module is loaded.
extern "C" cd::Predictor* catdog_open_torch(const char* path, const char* device, int threads,
                                            unsigned long long tensor_cache_bytes)
    __attribute__((weak));

namespace cd {

namespace {

double ms_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
}

// Where the LibTorch module is: CD_TORCH_MODULE, or beside the running binary.
std::string torch_module_path() {
  if (const char* env = std::getenv("CD_TORCH_MODULE"); env && *env) return env;
  std::error_code ec;
  auto exe = std::filesystem::read_symlink("/proc/self/exe", ec);
  return (ec ? std::filesystem::path(".") : exe.parent_path()) / "libcatdog_torch.so";
}

// The module's one entry point (core/nn/torch_module.cpp).
using OpenTorch = Predictor* (*)(const char* path, const char* device, int threads,
                                 unsigned long long tensor_cache_bytes);

std::unique_ptr<Predictor> open_torch_module(const std::string& path,
                                             const RuntimeOptions& options) {
  if (catdog_open_torch)  // linked in
    return std::unique_ptr<Predictor>(catdog_open_torch(
        path.c_str(), options.device.c_str(), options.threads, options.tensor_cache_bytes));
  static void* handle = nullptr;  // loaded once, never unloaded
  static std::string module;
  if (!handle) {
    module = torch_module_path();
    handle = ::dlopen(module.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (!handle)
      throw ModelError(path +
                       ": a catdog model file needs the LibTorch runtime, which cannot be "
                       "loaded (" +
                       std::string(::dlerror()) +
                       "); rewrite the model file with `cd-export --model " + path +
                       " --format cdm`, which adds the inference graph the oneDNN runtime runs, "
                       "or build the module (make build)");
  }
  auto open = reinterpret_cast<OpenTorch>(::dlsym(handle, "catdog_open_torch"));
  if (!open) throw ModelError(module + " is not catdog's LibTorch runtime module");
  return std::unique_ptr<Predictor>(
      open(path.c_str(), options.device.c_str(), options.threads, options.tensor_cache_bytes));
}

// Decodes items[begin, end) into rows; ok[i - begin] marks success.
void load_batch(std::vector<Prediction>& items, std::size_t begin, std::size_t end,
                const PreprocessSpec& spec, int threads, float* rows, std::vector<char>& ok) {
  std::size_t per_image = 3 * static_cast<std::size_t>(spec.size) * spec.size;
  parallel_for(begin, end, threads, [&](std::size_t i) {
    Prediction& item = items[i];
    if (!item.error.empty()) return;
    auto t0 = std::chrono::steady_clock::now();
    try {
      RgbImage rgb = resize_by_policy(read_rgb(item.path, spec.size), spec.size, spec.resize);
      to_chw_floats(rgb, spec.norm, rows + (i - begin) * per_image);
      ok[i - begin] = 1;
    } catch (const DataError& e) {
      std::string what = e.what();
      std::string prefix = "'" + item.path + "': ";
      item.error = starts_with(what, prefix) ? what.substr(prefix.size()) : what;
    }
    item.ms = ms_since(t0);
  });
}

}  // namespace

void Predictor::start_calibration() {
  throw UsageError("INT8 runs on catdog's oneDNN runtime only, not on " + runtime() +
                   ": use --device cpu, and a model file with an inference graph (rewrite an "
                   "older one with cd-export --model FILE --format cdm)");
}

void Predictor::quantize() { start_calibration(); }
void Predictor::write_int8_model(const std::string&) { start_calibration(); }

namespace {

// Mapped, not read: the graph's weights are used in place (util/mapped_file.h).
std::shared_ptr<const MappedFile> map_model(const std::string& path) {
  try {
    return std::make_shared<const MappedFile>(path);
  } catch (const IoError& e) {
    throw ModelError(e.what());
  }
}

}  // namespace

TtaChoice parse_tta(const std::string& name) {
  if (name == "model") return TtaChoice::k_model;
  if (name == "on") return TtaChoice::k_on;
  if (name == "off") return TtaChoice::k_off;
  throw UsageError("tta must be model|on|off, not '" + name + "'");
}

void apply_tta_choice(Predictor& model, TtaChoice choice) {
  if (choice != TtaChoice::k_model) model.set_tta_flip(choice == TtaChoice::k_on);
}

bool is_onnx_path(const std::string& path) { return ends_with(to_lower(path), ".onnx"); }

std::unique_ptr<Predictor> open_predictor(const std::string& path, const RuntimeOptions& options) {
  if (is_onnx_path(path)) {
    if (options.device == "cuda")
      throw UsageError(
          "an .onnx model runs on the CPU (catdog's oneDNN runtime); use the .cdm model file "
          "for --device cuda");
    return open_onnx_predictor(path, options.threads);
  }
  if (options.device == "cuda") return open_torch_module(path, options);
  std::shared_ptr<const MappedFile> file = map_model(path);
  FilePartsView parts = unpack_view(file->bytes(), path);
  check_kind(parts.kind, FileKind::k_model, path);
  ModelMeta meta = meta_from_json(parts.meta, path);
  if (parts.graph.empty()) {
    spdlog::warn(
        "'{}' is a model file of format {}, without an inference graph: it runs on LibTorch. "
        "Rewrite it with `cd-export --model {} --format cdm` to run it on the oneDNN runtime",
        path, meta.format_version, path);
    return open_torch_module(path, options);
  }
  InferenceGraph graph = read_graph(parts.graph, path, file);
  if (options.f32) {
    for (GraphNode& n : graph.nodes) {
      n.floats.erase(k_int8_input_lo);
      n.floats.erase(k_int8_input_hi);
    }
  }
  return open_graph_predictor(path, std::move(meta), std::move(graph), options.threads,
                              /*exported=*/false);
}

bool carries_int8_calibration(const std::string& path) {
  if (is_onnx_path(path)) return false;
  std::shared_ptr<const MappedFile> file = map_model(path);
  FilePartsView parts = unpack_view(file->bytes(), path);
  if (parts.kind != FileKind::k_model || parts.graph.empty()) return false;
  InferenceGraph graph = read_graph(parts.graph, path, file);
  return std::any_of(graph.nodes.begin(), graph.nodes.end(), [](const GraphNode& n) {
    return n.floats.count(k_int8_input_lo) > 0 || n.floats.count(k_int8_input_hi) > 0;
  });
}

void predict_all(Predictor& model, std::vector<Prediction>& items, int batch_size, int threads,
                 const std::function<void(const Prediction&)>& done) {
  const PreprocessSpec& spec = model.meta().preprocess;
  const std::size_t per_image = 3 * static_cast<std::size_t>(spec.size) * spec.size;
  batch_size = std::max(1, batch_size);
  std::vector<float> rows;
  for (std::size_t begin = 0; begin < items.size(); begin += batch_size) {
    std::size_t end = std::min(items.size(), begin + batch_size);
    rows.resize((end - begin) * per_image);
    std::vector<char> ok(end - begin, 0);
    auto t_load = std::chrono::steady_clock::now();
    load_batch(items, begin, end, spec, threads, rows.data(), ok);
    if (begin == 0)
      spdlog::debug("first batch: {} images read and decoded in {:.1f} ms", end, ms_since(t_load));
    // The good images, moved together so the runtime sees one dense batch.
    std::vector<std::size_t> good;
    for (std::size_t j = 0; j < ok.size(); ++j) {
      if (!ok[j]) continue;
      if (good.size() != j)
        std::memmove(rows.data() + good.size() * per_image, rows.data() + j * per_image,
                     per_image * sizeof(float));
      good.push_back(j);
    }
    if (!good.empty()) {
      auto t0 = std::chrono::steady_clock::now();
      std::vector<float> p = model.predict(rows.data(), good.size());
      double share = ms_since(t0) / static_cast<double>(good.size());
      for (std::size_t k = 0; k < good.size(); ++k) {
        Prediction& item = items[begin + good[k]];
        item.p_dog = p[k];
        item.ms += share;
      }
    }
    for (std::size_t i = begin; i < end; ++i) done(items[i]);
    // A run longer than one batch plans again (its last, smaller batch):
    // from weights of its own, not from a file that may change meanwhile.
    if (begin == 0 && end < items.size()) model.own_weights();
  }
}

std::size_t calibrate_int8(Predictor& model, const std::vector<std::string>& paths,
                           std::size_t count, int batch_size, int threads,
                           const std::string& origin) {
  if (count == 0) throw UsageError("INT8 calibration needs at least one image, not 0");
  if (paths.empty()) throw DataError(origin + " lists no images to calibrate on");
  const std::size_t want = std::min(paths.size(), count);
  std::vector<Prediction> items;
  for (std::size_t i = 0; i < want; ++i) items.push_back({paths[i * paths.size() / want], ""});
  model.start_calibration();
  Progress progress("int8 calibration", items.size());
  predict_all(model, items, batch_size, threads, [&](const Prediction&) { progress.advance(); });
  progress.finish();
  std::size_t failed = 0;
  for (const Prediction& p : items) failed += p.error.empty() ? 0 : 1;
  if (failed == items.size())
    throw DataError("no image of " + origin + " could be read to calibrate on");
  if (failed > 0)
    spdlog::warn("int8 calibration: {} of {} images of {} unreadable, skipped", failed,
                 items.size(), origin);
  model.quantize();
  return items.size() - failed;
}

}  // namespace cd
