#include "nn/compute.h"

#include <ATen/Parallel.h>
#include <torch/cuda.h>

#include <cstdlib>

#include "util/errors.h"

namespace cd {

DeviceChoice parse_device(const std::string& name) {
  if (name == "cpu") return DeviceChoice::k_cpu;
  if (name == "cuda") return DeviceChoice::k_cuda;
  if (name == "auto") return DeviceChoice::k_auto;
  throw UsageError("device '" + name + "' is not known; allowed: cpu|cuda|auto");
}

c10::Device select_device(DeviceChoice choice) {
  bool cuda = torch::cuda::is_available();
  if (choice == DeviceChoice::k_cuda && !cuda)
    throw UsageError(
        "--device cuda was asked for, but no CUDA device is available to this LibTorch build; "
        "use --device cpu or auto");
  if (choice == DeviceChoice::k_cpu || !cuda) return c10::Device(c10::kCPU);
  // One GPU per process: torchrun and PyTorchJob set LOCAL_RANK for each rank on a node.
  const char* local = std::getenv("LOCAL_RANK");
  int index = local ? std::atoi(local) : 0;
  auto count = static_cast<int>(torch::cuda::device_count());
  return c10::Device(c10::kCUDA, static_cast<c10::DeviceIndex>(count > 0 ? index % count : 0));
}

void set_compute_threads(int threads) { at::set_num_threads(threads); }

}  // namespace cd
