// The LibTorch headers every torch-using target needs, precompiled once per
// build (core/CMakeLists.txt). They are narrow ones: ATen's tensor API and
// torch::nn::Module, not <torch/torch.h>. Measured here: trainer.cpp compiles
// in 10.7 s with it and 14-15 s without, but a full -j2 build is not clearly
// faster (2m48 with it, 3m02 without, on a noisy machine): building and
// loading the 380 MB PCH eats most of the gain. It pays in the edit-compile
// loop. -DCATDOG_PCH=OFF turns it off.
#pragma once

#include <ATen/ATen.h>
#include <torch/nn/module.h>
