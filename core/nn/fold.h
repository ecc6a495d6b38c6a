// Convolutions for inference: batch norm folded into the convolution before
// it, w' = w * g / sqrt(v + eps), b' = beta + (b - m) * g / sqrt(v + eps), for
// one conv or a whole Sequential; and a convolution that stays on oneDNN at
// any thread count.
#pragma once

#include <ATen/core/Tensor.h>
#include <torch/nn/modules/batchnorm.h>
#include <torch/nn/modules/container/sequential.h>
#include <torch/nn/modules/conv.h>

#include <cstdint>

namespace cd {

torch::nn::Conv2d fold_batch_norm(const torch::nn::Conv2dImpl& conv,
                                  const torch::nn::BatchNorm2dImpl& bn);

// A copy of seq where every conv followed by batch norm is one folded conv
// that runs through conv2d below, and the activation after it works in place.
torch::nn::Sequential fuse_conv_bn(torch::nn::Sequential& seq);

// at::conv2d, except for the one case LibTorch 1.13 keeps from oneDNN: a 1x1
// convolution at a batch under 16 on one thread, without gradients, runs its
// im2col path instead (its rule assumes oneDNN pays only with threads). Here
// that path is 4-5x slower than oneDNN for such a convolution, and those hold
// most of EfficientNet-Lite's work: with --threads 1 Lite2 at 300 took 87 ms
// an image at batch 1, and takes 30 through oneDNN (bench_floor, one thread).
at::Tensor conv2d(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias,
                  at::IntArrayRef stride, at::IntArrayRef padding, at::IntArrayRef dilation,
                  std::int64_t groups);

}  // namespace cd
