#include "nn/weights.h"

#include <torch/nn/module.h>
#include <torch/serialize/input-archive.h>
#include <torch/serialize/output-archive.h>

#include <sstream>

#include "util/errors.h"

namespace cd {

std::string serialize_module(torch::nn::Module& module) {
  torch::serialize::OutputArchive archive;
  module.save(archive);
  std::ostringstream out;
  archive.save_to(out);
  return out.str();
}

void deserialize_module(torch::nn::Module& module, const std::string& payload,
                        const std::string& origin) {
  try {
    torch::serialize::InputArchive archive;
    std::istringstream in(payload);
    archive.load_from(in);
    module.load(archive);
  } catch (const c10::Error& e) {
    std::string what = e.what_without_backtrace();
    throw ModelError(origin + ": weights do not match the architecture or are corrupt (" +
                     what.substr(0, what.find('\n')) + ")");
  }
}

}  // namespace cd
