// The network architectures, built by name from the model file's metadata.
//   baseline: the original system's CNN (4 x conv-ReLU-pool, dense 512, dropout).
//   compact:  5 x (conv-BN-ReLU-pool) and global average pooling; ~1M params.
#pragma once

#include <torch/nn/module.h>
#include <torch/nn/modules/container/sequential.h>

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace cd {

const std::vector<std::string>& architecture_names();

// Throws UsageError for an unknown name or unusable parameters.
torch::nn::Sequential build_network(const std::string& architecture, int input_size,
                                    const nlohmann::json& params = nlohmann::json::object());

std::int64_t count_parameters(torch::nn::Module& module);

// Forward GFLOPs (multiply-add = 2) per image, for the compute floor.
double forward_gflops(const std::string& architecture, int input_size);

// Moves 4-D parameters to channels-last, which oneDNN runs 1.1-2.6x faster here.
void to_channels_last(torch::nn::Module& module);

}  // namespace cd

namespace cd {

// Weights in and out of LibTorch's archive format (named parameters and buffers).
std::string serialize_module(torch::nn::Module& module);
// Throws ModelError naming origin when names or shapes do not match.
void deserialize_module(torch::nn::Module& module, const std::string& payload, const std::string& origin);

}  // namespace cd

namespace c10 {
struct Device;
}

namespace cd {
enum class DeviceChoice;
// cpu, or cuda when asked for (UsageError if absent) or when auto finds one.
c10::Device select_device(DeviceChoice choice);
}  // namespace cd
