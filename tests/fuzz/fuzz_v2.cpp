// The Open Inference Protocol's request parser (cd-serve/v2.h) on arbitrary
// bytes: the first byte picks JSON alone or the binary extension, the next
// two the JSON's length. Nothing may crash or allocate past what was sent,
// and whatever is accepted must hold as many elements as its shape says.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <optional>
#include <string_view>

#include "cd-serve/v2.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 3) return 0;
  namespace v2 = cd::serve::v2;
  std::optional<std::size_t> header_length;
  if (data[0] & 1) header_length = static_cast<std::size_t>(data[1] | (data[2] << 8));
  std::string_view body(reinterpret_cast<const char*>(data) + 3, size - 3);
  try {
    v2::InferRequest req = v2::parse_infer(body, header_length, {64});
    for (const auto& in : req.inputs) {
      std::uint64_t n = v2::element_count(in.shape, UINT64_MAX);
      std::size_t held = in.datatype == v2::DataType::k_fp32 ? in.floats.size() : in.bytes.size();
      if (n != held ||
          (in.datatype == v2::DataType::k_fp32 ? !in.bytes.empty() : !in.floats.empty()))
        std::abort();
      if (in.floats.size() > body.size() || in.bytes.size() > 64) std::abort();
    }
  } catch (const v2::ProtocolError&) {
  }
  return 0;
}
