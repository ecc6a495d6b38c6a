// The inference-graph readers: a model file's graph section (catdog-graph 1)
// and an exported .onnx file (read by catdog's own protobuf reader), picked
// by the first byte. Only ModelError may leave.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "runtime/graph.h"
#include "runtime/predictor.h"
#include "util/errors.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  std::string_view bytes(reinterpret_cast<const char*>(data) + 1, size - 1);
  try {
    if (data[0] % 2 == 0) {
      cd::read_graph(bytes, "fuzz.cdm");
    } else {
      cd::read_onnx_meta(bytes, "fuzz.onnx");
      cd::read_onnx_graph(bytes, "fuzz.onnx");
    }
  } catch (const cd::ModelError&) {
  }
  return 0;
}
