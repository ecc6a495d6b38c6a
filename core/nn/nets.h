// The network architectures, built by name from the model file's metadata.
//   baseline: the original system's CNN (4 x conv-ReLU-pool, dense 512, dropout).
//   compact:  5 x (conv-BN-ReLU-pool) and global average pooling; ~0.76M params.
//   darknet:  ImageNet Tiny Darknet (imported from TF.js) with a linear cat/dog
//             head on its pooled features and ImageNet logits.
//   efficientnet-lite0|1|2: ImageNet EfficientNet-Lite (efficientnet.h), the same kind of head.
// Every network splits into embed() (the backbone) and classify() (the head),
// so a frozen backbone's features can be computed once and the head trained alone.
#pragma once

#include <torch/nn/module.h>
#include <torch/nn/modules/container/sequential.h>
#include <torch/nn/modules/linear.h>

#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace cd {

class GraphBuilder;

class NetworkImpl : public torch::nn::Module {
 public:
  virtual at::Tensor embed(const at::Tensor& x) = 0;            // [N,3,S,S] -> [N,F]
  virtual at::Tensor classify(const at::Tensor& features) = 0;  // [N,F] -> [N,1] logits
  virtual at::Tensor forward(const at::Tensor& x) { return classify(embed(x)); }
  // Parameters of the head alone (the part a frozen backbone leaves to train).
  virtual std::vector<at::Tensor> head_parameters() = 0;
  // Folds batch norm into the preceding convolutions for inference (eval only).
  virtual void fuse_for_inference() {}
  // Forward FLOPs for one image of side `size` (multiply-add = 2).
  virtual double flops(int size) = 0;
  // The inference graph (call after prepare_for_inference, BN folded) for an
  // input of side `size`: from the input's name to the logits' name.
  virtual std::string describe(GraphBuilder& graph, const std::string& x, int size) = 0;
  // The untouched ImageNet head of a pretrained backbone: [N,3,S,S] -> [N,1000]
  // logits. Throws UsageError for the architectures trained from scratch.
  virtual at::Tensor imagenet_logits(const at::Tensor& x);
  // Fine-tuning only the last `n` backbone stages: the earlier stages stop
  // learning and keep their BN statistics (they stay in eval mode through
  // train()). Throws UsageError when the network has fewer stages or none.
  void freeze_all_but_last_stages(int n);
  // Every batch norm keeps its running statistics through train() (its scale
  // and shift still learn): fine-tuning a model whose head was fitted on
  // those statistics, in batches too small to estimate new ones.
  void keep_bn_statistics();
  void train(bool on = true) override;

 protected:
  using Modules = std::vector<std::shared_ptr<torch::nn::Module>>;
  // The backbone's stages in forward order (pretrained backbones only).
  virtual std::vector<Modules> stages() { return {}; }

 private:
  Modules m_frozen;
  bool m_keep_bn = false;
};
using Network = std::shared_ptr<NetworkImpl>;

const std::vector<std::string>& architecture_names();

// What a pretrained backbone's head reads: the pooled last block, the ImageNet
// logits, both, "rich" (both plus the pooled outputs of the last two stages),
// or "rich-max" (rich plus the last features max-pooled over the positions:
// the strongest local evidence, which an average over a big scene dilutes
// when the animal is small in it).
enum class DarknetFeatures { k_pooled, k_logits, k_both, k_rich, k_rich_max };
DarknetFeatures parse_darknet_features(const std::string& name);  // UsageError
std::string to_string(DarknetFeatures features);
inline bool has_taps(DarknetFeatures f) {
  return f == DarknetFeatures::k_rich || f == DarknetFeatures::k_rich_max;
}

// The head's input in the graph, as embed() builds it for each mode: the
// pooled features, the ImageNet logits (described only when the mode reads
// them), both, or the rich taps before both, and for rich-max the max-pooled
// features after them (`peak`, described only then).
std::string describe_head_input(GraphBuilder& graph, DarknetFeatures mode,
                                std::vector<std::string> taps, const std::string& pooled,
                                const std::function<std::string()>& logits,
                                const std::function<std::string()>& peak);

// Throws UsageError for an unknown name or unusable parameters.
Network build_network(const std::string& architecture, int input_size,
                      const nlohmann::json& params = nlohmann::json::object());

std::int64_t count_parameters(torch::nn::Module& module);

// Forward GFLOPs (multiply-add = 2) per image, for the compute floor.
double forward_gflops(const std::string& architecture, int input_size,
                      const nlohmann::json& params = nlohmann::json::object());

// Readies net for inference in place: eval mode, BN folded, on `device`,
// channels-last on the CPU. The classifier and folded_copy() both use it.
void prepare_for_inference(NetworkImpl& net, const c10::Device& device);

// A copy of net for inference alone: the same weights, eval mode, BN folded,
// on `device` and channels-last on the CPU, as cd-predict runs it. The frozen
// feature pass embeds with it; net itself stays trainable and savable.
Network folded_copy(NetworkImpl& net, const std::string& architecture, int input_size,
                    const nlohmann::json& params, const c10::Device& device);

// Moves 4-D parameters to channels-last, which oneDNN runs 1.1-2.6x faster here.
void to_channels_last(torch::nn::Module& module);

// A batch as the network on `device` wants it: moved there, and
// channels-last on the CPU to match to_channels_last().
at::Tensor to_network_input(const at::Tensor& x, const c10::Device& device);

}  // namespace cd
