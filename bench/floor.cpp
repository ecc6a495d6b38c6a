// The compute floor: the machine's measured matmul peak against each
// architecture's forward GFLOPs per image and the rate inference reaches.
// It also gives each architecture's inference cost per image at batch 1 and
// 32, with and without the mirrored second look (TTA), as cd-predict and
// cd-serve run it: BN folded, channels-last.
// Prints one JSON object. Usage: bench_floor [PRETRAINED_DIR] [threads] [NAME:SIZE...]
// (PRETRAINED_DIR holds darknet-tiny-imagenet and efficientnet-liteN; the
// Lite variants that are absent are left out; each NAME:SIZE adds that
// backbone at another input, e.g. efficientnet-lite2:300, as NAME@SIZE; a
// trailing /aten runs an EfficientNet-Lite on LibTorch's ops instead of the
// oneDNN engine, for the two side by side: efficientnet-lite2:300/aten).
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <malloc.h>
#include <torch/nn/module.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <nlohmann/json.hpp>
#include <vector>

#include "nn/darknet_import.h"
#include "nn/efficientnet.h"
#include "nn/nets.h"

namespace {

double seconds(const std::function<void()>& fn, int repeats) {
  std::vector<double> times;
  for (int i = 0; i < repeats; ++i) {
    auto t0 = std::chrono::steady_clock::now();
    fn();
    times.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  std::sort(times.begin(), times.end());
  return times[times.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  mallopt(M_MMAP_THRESHOLD, 1 << 30);
  mallopt(M_TRIM_THRESHOLD, 1 << 30);
  std::string pretrained = argc > 1 ? argv[1] : "data/pretrained";
  int threads = argc > 2 ? std::atoi(argv[2]) : 2;
  at::set_num_threads(threads);
  c10::InferenceMode guard;
  nlohmann::ordered_json out;
  const int n = 2048;
  at::Tensor a = at::rand({n, n}), b = at::rand({n, n});
  at::mm(a, b);
  double mm_s = seconds([&] { at::mm(a, b); }, 7);
  double peak = 2.0 * n * n * n / mm_s / 1e9;
  out["threads"] = threads;
  out["matmul_gflops_per_s"] = peak;
  struct Arch {
    std::string name;
    int size;
    nlohmann::json params;
    std::string key;    // in the JSON: the name, or NAME@SIZE for an extra entry
    bool aten = false;  // CATDOG_LITE_ENGINE=aten while it folds
  };
  auto darknet =
      cd::import_tfjs_darknet(pretrained + "/darknet-tiny-imagenet", cd::DarknetFeatures::k_rich);
  std::vector<Arch> archs{{"baseline", 224, {}, "baseline"},
                          {"compact", 128, {}, "compact"},
                          {"darknet", 288, darknet.params, "darknet"}};
  auto lite = [&](const std::string& name) {
    return cd::import_efficientnet_lite(pretrained + "/" + name, name, cd::DarknetFeatures::k_rich)
        .params;
  };
  for (auto [variant, size] : {std::pair{0, 224}, {1, 240}, {2, 260}}) {
    std::string name = "efficientnet-lite" + std::to_string(variant);
    if (std::filesystem::exists(pretrained + "/" + name + "/weights.json"))
      archs.push_back({name, size, lite(name), name});
  }
  // More entries as NAME:SIZE (an EfficientNet-Lite or darknet at another
  // input), reported as NAME@SIZE in the same run; efficientnet-liteN:SIZE+SECOND
  // also looks at the image at SECOND (model.second_input_size), and
  // efficientnet-liteN:SIZE,efficientnet-liteM:SIDE has Lite M beside it at
  // SIDE (model.second_backbone, model.second_backbone_size).
  for (int i = 3; i < argc; ++i) {
    std::string spec = argv[i];
    const std::string aten_suffix = "/aten";
    bool aten =
        spec.size() > aten_suffix.size() &&
        spec.compare(spec.size() - aten_suffix.size(), aten_suffix.size(), aten_suffix) == 0;
    if (aten) spec.resize(spec.size() - aten_suffix.size());
    const std::string label = spec;
    std::size_t comma = spec.find(',');
    std::string other = comma == std::string::npos ? "" : spec.substr(comma + 1);
    if (comma != std::string::npos) spec.resize(comma);
    std::size_t other_colon = other.find(':');
    std::string other_name = other.substr(0, other_colon);
    int other_side =
        other_colon == std::string::npos ? 0 : std::atoi(other.c_str() + other_colon + 1);
    bool bad_other =
        !other.empty() && (other_side <= 0 || other_name.rfind("efficientnet-lite", 0) != 0 ||
                           !std::filesystem::exists(pretrained + "/" + other_name));
    std::size_t colon = spec.find(':'), plus = spec.find('+');
    int size = colon == std::string::npos ? 0 : std::atoi(spec.c_str() + colon + 1);
    int second = plus == std::string::npos ? 0 : std::atoi(spec.c_str() + plus + 1);
    std::string name = spec.substr(0, colon);
    bool is_lite = name.rfind("efficientnet-lite", 0) == 0;
    bool bad_second = plus != std::string::npos && (!is_lite || second <= 0);
    if (size <= 0 || (name != "darknet" && !is_lite) || bad_second || (aten && !is_lite) ||
        bad_other || (!other.empty() && !is_lite)) {
      std::cerr << "bench_floor: " << label
                << " is not darknet:SIZE or "
                   "efficientnet-liteN:SIZE[+SECOND][,efficientnet-liteM:SIDE][/aten]\n";
      return 2;
    }
    nlohmann::json params = is_lite ? lite(name) : darknet.params;
    if (second > 0) params["scales"] = {second};
    if (!other.empty()) {
      params["second"] = lite(other_name);
      params["second"]["side"] = other_side;
    }
    archs.push_back({name, size, params,
                     name + "@" + label.substr(colon + 1) + (aten ? aten_suffix : ""), aten});
  }
  for (const auto& arch : archs) {
    cd::Network net = cd::build_network(arch.name, arch.size, arch.params);
    net->eval();
    double gflops = net->flops(arch.size) / 1e9;
    if (arch.aten) setenv("CATDOG_LITE_ENGINE", "aten", 1);
    net->fuse_for_inference();
    unsetenv("CATDOG_LITE_ENGINE");
    cd::to_channels_last(*net);
    auto input = [&](int batch) {
      return at::rand({batch, 3, arch.size, arch.size}).contiguous(at::MemoryFormat::ChannelsLast);
    };
    at::Tensor x = input(32), one = input(1);
    net->forward(x);
    double s = seconds([&] { net->forward(x); }, 5);
    // TTA as the classifier runs it: both views in one batch.
    double s_tta = seconds([&] { net->forward(at::cat({x, x.flip({3})})); }, 3);
    net->forward(one);
    double s1 = seconds([&] { net->forward(one); }, 21);
    double s1_tta = seconds([&] { net->forward(at::cat({one, one.flip({3})})); }, 21);
    double rate = 32 * gflops / s;
    out["architectures"][arch.key] = {{"input", arch.size},
                                      {"forward_gflops_per_image", gflops},
                                      {"inference_images_per_s_batch32", 32 / s},
                                      {"inference_gflops_per_s", rate},
                                      {"fraction_of_matmul_peak", rate / peak},
                                      {"ms_per_image_batch1", 1e3 * s1},
                                      {"ms_per_image_batch32", 1e3 * s / 32},
                                      {"ms_per_image_batch1_tta", 1e3 * s1_tta},
                                      {"ms_per_image_batch32_tta", 1e3 * s_tta / 32}};
  }
  std::cout << out.dump(2) << std::endl;
  return 0;
}
