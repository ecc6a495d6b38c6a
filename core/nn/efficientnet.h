// EfficientNet-Lite (Google, 2020): a CPU-oriented ImageNet backbone of
// MBConv blocks (1x1 expand, depthwise kxk, 1x1 project, ReLU6, no
// squeeze-and-excitation) with TensorFlow "SAME" padding, BN epsilon 1e-3,
// and input scaled as (x - 127) / 128. build_network("efficientnet-liteN")
// builds it from the topology that import_efficientnet_lite() reads off the
// converted weights (tools/cd-train/import_efficientnet_lite.py).
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "nn/darknet_import.h"
#include "nn/nets.h"

namespace cd {

bool is_efficientnet_lite(const std::string& architecture);

// params: {"bn_eps", "stem", "head", "classes", "features", "blocks": [{"in",
// "out", "expand", "kernel", "stride"}], optional "scales": [side, ...]: the
// backbone also looks at the input resized to each side; optional "second":
// another backbone's params (no scales, the same features) and "side": it looks
// at the input resized to that side. The head reads every look's features side
// by side}. Throws UsageError when malformed.
Network efficientnet_lite(const nlohmann::json& params);

// model.second_backbone: another EfficientNet-Lite beside the first, from its
// converted weights in `dir`, looking at the image resized to `side`.
struct SecondBackbone {
  std::string dir, architecture;
  int side = 0;
};

// Reads DIR/weights.json and DIR/weights.bin (catdog-tensors/1), checks that
// they hold `architecture`, derives the blocks from the tensor shapes and
// returns the topology and weights with the cat/dog head zeroed; with a
// second backbone (architecture not empty), its weights too, under "second.".
// Throws ModelError.
PretrainedImport import_efficientnet_lite(const std::string& dir, const std::string& architecture,
                                          DarknetFeatures features = DarknetFeatures::k_pooled,
                                          const std::vector<int>& scales = {},
                                          const SecondBackbone& second = {});

}  // namespace cd
