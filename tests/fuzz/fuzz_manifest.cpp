// Manifest text (path,label CSV) through the parser. Only DataError and
// UsageError may leave.
#include <cstddef>
#include <cstdint>
#include <string>

#include "domain/manifest.h"
#include "util/errors.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  try {
    auto samples =
        cd::parse_manifest(std::string(reinterpret_cast<const char*>(data), size), "fuzz.csv");
    (void)cd::format_manifest(samples);
  } catch (const cd::DataError&) {
  } catch (const cd::UsageError&) {
  }
  return 0;
}
