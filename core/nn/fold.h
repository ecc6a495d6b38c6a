// Batch norm folded into the convolution before it, for inference:
// w' = w * g / sqrt(v + eps), b' = beta + (b - m) * g / sqrt(v + eps).
#pragma once

#include <torch/nn/modules/batchnorm.h>
#include <torch/nn/modules/conv.h>

namespace cd {

torch::nn::Conv2d fold_batch_norm(const torch::nn::Conv2dImpl& conv,
                                  const torch::nn::BatchNorm2dImpl& bn);

}  // namespace cd
