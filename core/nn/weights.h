// A network's weights in and out of LibTorch's archive format (named
// parameters and buffers): the payload of model files and checkpoints.
#pragma once

#include <string>

namespace torch::nn {
class Module;
}

namespace cd {

std::string serialize_module(torch::nn::Module& module);

// Throws ModelError naming origin when names or shapes do not match.
void deserialize_module(torch::nn::Module& module, const std::string& payload,
                        const std::string& origin);

}  // namespace cd
