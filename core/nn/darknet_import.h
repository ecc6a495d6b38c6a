// The ImageNet Tiny Darknet backbone, read from its TF.js layers model
// (model.json plus raw float32 shards) into build_network("darknet").
#pragma once

#include <nlohmann/json.hpp>
#include <string>

#include "nn/nets.h"

namespace cd {

struct PretrainedImport {
  nlohmann::json params;  // the topology, as build_network() takes it
  std::string weights;    // serialize_module() of the built network, head zeroed
};

// Weights are looked up by name in topology order; HWIO kernels become OIHW.
// features picks the head input. Throws ModelError.
PretrainedImport import_tfjs_darknet(const std::string& dir,
                                     DarknetFeatures features = DarknetFeatures::k_both);

}  // namespace cd
