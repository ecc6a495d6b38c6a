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
// backbone also looks at the input resized to each side, and the head reads
// every look's features side by side}. Throws UsageError when malformed.
Network efficientnet_lite(const nlohmann::json& params);

// Reads DIR/weights.json and DIR/weights.bin (catdog-tensors/1), checks that
// they hold `architecture`, derives the blocks from the tensor shapes and
// returns the topology and weights with the cat/dog head zeroed. Throws ModelError.
PretrainedImport import_efficientnet_lite(const std::string& dir, const std::string& architecture,
                                          DarknetFeatures features = DarknetFeatures::k_pooled,
                                          const std::vector<int>& scales = {});

}  // namespace cd
