// The forward pass alone, on the runtime cd-predict and cd-serve use: a model
// file or an .onnx file opened as they open it, fed random preprocessed
// images. For each batch size: the first run (the plan and its primitives
// built) and the median of the later ones, in ms per image.
// A model file runs as cd-predict runs it: in INT8 where it carries its
// calibration (the pipeline's model.cdm), else in f32.
// --int8: INT8 also for a file without calibration (Predictor::quantize),
// calibrated on the first batch's random images; speed only (cd-eval
// measures the accuracy). --f32: f32 even for a calibrated file.
// Prints one JSON object. Usage: bench_forward [--int8|--f32] MODEL [threads] [repeats] [batch...]
// (defaults: 2 threads, 15 repeats, batches 1 and 32).
#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <iostream>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <vector>

#include "runtime/predictor.h"

namespace {

double ms_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
}

}  // namespace

int main(int argc, char** argv) {
  const std::string flag = argc > 1 ? argv[1] : "";
  const bool int8 = flag == "--int8", f32 = flag == "--f32";
  if (int8 || f32) {
    --argc;
    ++argv;
  }
  if (argc < 2) {
    std::cerr << "usage: bench_forward [--int8|--f32] MODEL [threads] [repeats] [batch...]\n";
    return 2;
  }
  const std::string path = argv[1];
  const int threads = argc > 2 ? std::atoi(argv[2]) : 2;
  const int repeats = argc > 3 ? std::max(1, std::atoi(argv[3])) : 15;
  std::vector<int> batches;
  for (int i = 4; i < argc; ++i) batches.push_back(std::max(1, std::atoi(argv[i])));
  if (batches.empty()) batches = {1, 32};
  try {
    auto t0 = std::chrono::steady_clock::now();
    cd::RuntimeOptions options;
    options.threads = threads;
    options.f32 = f32;
    auto model = cd::open_predictor(path, options);
    nlohmann::ordered_json out;
    out["model"] = path;
    out["runtime"] = model->runtime();
    out["int8"] = model->int8() || int8;
    out["threads"] = threads;
    out["open_ms"] = ms_since(t0);
    const std::size_t side = static_cast<std::size_t>(model->meta().preprocess.size);
    out["side"] = side;
    std::mt19937 rng(7);
    std::normal_distribution<float> normal(0.f, 1.f);
    for (int batch : batches) {
      std::vector<float> images(static_cast<std::size_t>(batch) * 3 * side * side);
      for (float& v : images) v = normal(rng);
      if (int8 && !model->int8() && batch == batches.front()) {
        model->start_calibration();
        model->predict(images.data(), static_cast<std::size_t>(batch));
        model->quantize();
      }
      auto t_first = std::chrono::steady_clock::now();
      model->predict(images.data(), static_cast<std::size_t>(batch));
      double first = ms_since(t_first);
      std::vector<double> per_image;
      for (int r = 0; r < repeats; ++r) {
        auto t = std::chrono::steady_clock::now();
        model->predict(images.data(), static_cast<std::size_t>(batch));
        per_image.push_back(ms_since(t) / batch);
      }
      std::sort(per_image.begin(), per_image.end());
      out["batches"][std::to_string(batch)] = {{"first_run_ms", first},
                                               {"median_ms_per_image", per_image[repeats / 2]},
                                               {"min_ms_per_image", per_image.front()},
                                               {"max_ms_per_image", per_image.back()}};
    }
    std::cout << out.dump() << "\n";
  } catch (const std::exception& e) {
    std::cerr << "bench_forward: error: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
