// The tensor end of the preprocessing path in domain/image.h: the same
// floats, in a LibTorch tensor for the tools that run a network.
#pragma once

#include <ATen/Tensor.h>

#include <string_view>

#include "domain/image.h"

namespace cd {

// 8-bit RGB HWC -> float [3,H,W], normalised (to_chw_floats into a tensor).
at::Tensor to_tensor(const RgbImage& rgb, Normalization norm);

// decode -> resize -> normalise: float [3,S,S]. Throws DataError.
at::Tensor preprocess(std::string_view bytes, const PreprocessSpec& spec,
                      PreprocessTiming* timing = nullptr);

}  // namespace cd
