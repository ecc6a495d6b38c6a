// Model file bytes through the container reader and the metadata checks
// (the weights themselves are LibTorch's archive, read only after the
// checksum has matched). Only ModelError may leave.
#include <cstddef>
#include <cstdint>
#include <string>

#include "domain/model_file.h"
#include "util/errors.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string bytes(reinterpret_cast<const char*>(data), size);
  try {
    cd::FileParts parts = cd::unpack_file(bytes, "fuzz.cdm");
    cd::meta_from_json(parts.meta, "fuzz.cdm");
  } catch (const cd::ModelError&) {
  }
  return 0;
}
