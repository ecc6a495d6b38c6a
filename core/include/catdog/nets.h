// The network architectures, built by name from the model file's metadata.
//   baseline: the original system's CNN (4 x conv-ReLU-pool, dense 512, dropout).
//   compact:  5 x (conv-BN-ReLU-pool) and global average pooling; ~0.76M params.
//   darknet:  ImageNet Tiny Darknet (imported from TF.js) with a linear cat/dog
//             head on its pooled features and ImageNet logits.
// Every network splits into embed() (the backbone) and classify() (the head),
// so a frozen backbone's features can be computed once and the head trained alone.
#pragma once

#include <torch/nn/module.h>
#include <torch/nn/modules/container/sequential.h>
#include <torch/nn/modules/linear.h>

#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace c10 {
struct Device;
}

namespace cd {

class NetworkImpl : public torch::nn::Module {
 public:
  virtual at::Tensor embed(const at::Tensor& x) = 0;         // [N,3,S,S] -> [N,F]
  virtual at::Tensor classify(const at::Tensor& features) = 0;  // [N,F] -> [N,1] logits
  at::Tensor forward(const at::Tensor& x) { return classify(embed(x)); }
  // Parameters of the head alone (the part a frozen backbone leaves to train).
  virtual std::vector<at::Tensor> head_parameters() = 0;
  // Folds batch norm into the preceding convolutions for inference (eval only).
  virtual void fuse_for_inference() {}
  // Forward FLOPs for one image of side `size` (multiply-add = 2).
  virtual double flops(int size) = 0;
};
using Network = std::shared_ptr<NetworkImpl>;

const std::vector<std::string>& architecture_names();

// Throws UsageError for an unknown name or unusable parameters.
Network build_network(const std::string& architecture, int input_size,
                      const nlohmann::json& params = nlohmann::json::object());

std::int64_t count_parameters(torch::nn::Module& module);

// Forward GFLOPs (multiply-add = 2) per image, for the compute floor.
double forward_gflops(const std::string& architecture, int input_size,
                      const nlohmann::json& params = nlohmann::json::object());

// Moves 4-D parameters to channels-last, which oneDNN runs 1.1-2.6x faster here.
void to_channels_last(torch::nn::Module& module);

// Weights in and out of LibTorch's archive format (named parameters and buffers).
std::string serialize_module(torch::nn::Module& module);
// Throws ModelError naming origin when names or shapes do not match.
void deserialize_module(torch::nn::Module& module, const std::string& payload, const std::string& origin);

enum class DeviceChoice;
// cpu, or cuda when asked for (UsageError if absent) or when auto finds one.
c10::Device select_device(DeviceChoice choice);

// --- Tiny Darknet -----------------------------------------------------------

struct DarknetImport {
  nlohmann::json params;  // the topology, as build_network("darknet") takes it
  std::string weights;    // serialize_module() of the built network, head zeroed
};

// Reads a TF.js layers model (model.json + float32 shards). Weights are looked
// up by name in topology order; HWIO kernels become OIHW. Throws ModelError.
DarknetImport import_tfjs_darknet(const std::string& dir, const std::string& features = "both");

// The untouched ImageNet head: [N,3,S,S] in [0,1] -> [N,1000] logits.
at::Tensor darknet_imagenet_logits(NetworkImpl& net, const at::Tensor& x);

}  // namespace cd
