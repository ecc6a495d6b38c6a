#include "catdog/nets.h"

#include <torch/nn/modules/activation.h>
#include <torch/nn/modules/batchnorm.h>
#include <torch/nn/modules/conv.h>
#include <torch/nn/modules/dropout.h>
#include <torch/nn/modules/linear.h>
#include <torch/nn/modules/pooling.h>

#include "catdog/errors.h"

namespace cd {

namespace nn = torch::nn;

namespace {

// The original Keras model: valid 3x3 convs, 2x2 pools, dense 512, dropout 0.5.
nn::Sequential baseline(int input_size) {
  nn::Sequential net;
  int channels = 3, side = input_size;
  for (int width : {32, 64, 128, 128}) {
    net->push_back(nn::Conv2d(nn::Conv2dOptions(channels, width, 3)));
    net->push_back(nn::ReLU());
    net->push_back(nn::MaxPool2d(nn::MaxPool2dOptions(2)));
    channels = width;
    side = (side - 2) / 2;
  }
  if (side < 1) throw UsageError("baseline needs an input size of at least 46 pixels");
  net->push_back(nn::Flatten());
  net->push_back(nn::Linear(channels * side * side, 512));
  net->push_back(nn::ReLU());
  net->push_back(nn::Dropout(0.5));
  net->push_back(nn::Linear(512, 1));
  return net;
}

nn::Sequential compact(const nlohmann::json& params) {
  auto widths = params.value("widths", std::vector<int>{32, 64, 128, 192, 256});
  double dropout = params.value("dropout", 0.3);
  nn::Sequential net;
  int channels = 3;
  for (int width : widths) {
    net->push_back(nn::Conv2d(nn::Conv2dOptions(channels, width, 3).padding(1).bias(false)));
    net->push_back(nn::BatchNorm2d(width));
    net->push_back(nn::ReLU());
    net->push_back(nn::MaxPool2d(nn::MaxPool2dOptions(2)));
    channels = width;
  }
  net->push_back(nn::AdaptiveAvgPool2d(nn::AdaptiveAvgPool2dOptions(1)));
  net->push_back(nn::Flatten());
  net->push_back(nn::Dropout(dropout));
  net->push_back(nn::Linear(channels, 1));
  return net;
}

}  // namespace

const std::vector<std::string>& architecture_names() {
  static const std::vector<std::string> k_names{"baseline", "compact"};
  return k_names;
}

nn::Sequential build_network(const std::string& architecture, int input_size,
                             const nlohmann::json& params) {
  if (architecture == "baseline") return baseline(input_size);
  if (architecture == "compact") return compact(params);
  throw UsageError("unknown architecture '" + architecture + "'; allowed: baseline|compact");
}

std::int64_t count_parameters(nn::Module& module) {
  std::int64_t n = 0;
  for (const auto& p : module.parameters()) n += p.numel();
  return n;
}

double forward_gflops(const std::string& architecture, int input_size) {
  nn::Sequential net = build_network(architecture, input_size);
  net->eval();
  torch::NoGradGuard no_grad;
  // Run the net layer by layer so every conv sees its real output shape.
  double flops = 0;
  at::Tensor x = torch::zeros({1, 3, input_size, input_size});
  std::size_t index = 0;
  for (auto it = net->begin(); it != net->end(); ++it, ++index) {
    at::Tensor in = x;
    x = it->forward(in);
    if (auto* conv = net[index]->as<nn::Conv2dImpl>()) {
      const auto& o = conv->options;
      flops += 2.0 * x.numel() * (o.in_channels() / o.groups()) * o.kernel_size()->at(0) * o.kernel_size()->at(1);
    } else if (auto* linear = net[index]->as<nn::LinearImpl>()) {
      flops += 2.0 * linear->options.in_features() * linear->options.out_features();
    }
  }
  return flops / 1e9;
}

void to_channels_last(nn::Module& module) {
  torch::NoGradGuard no_grad;
  for (auto& p : module.parameters())
    if (p.dim() == 4) p.set_data(p.contiguous(at::MemoryFormat::ChannelsLast));
}

}  // namespace cd
