// Image bytes through THE preprocessing path: header check, decode, resize
// by each policy, normalise. Only DataError (BudgetError included) may leave.
#include <cstddef>
#include <cstdint>
#include <string_view>
#include <vector>

#include "domain/image.h"
#include "util/atomic_file.h"
#include "util/errors.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static const bool once = [] {
    cd::input_budget().max_pixels = 4'000'000;    // keeps each run fast; the check is what counts
    cd::input_budget().max_decode_seconds = 0.5;  // a costly input is found, not waited for
    return true;
  }();
  (void)once;
  std::string_view bytes(reinterpret_cast<const char*>(data), size);
  std::vector<float> out(3 * 24 * 24);
  for (auto policy : {cd::ResizePolicy::k_stretch, cd::ResizePolicy::k_center_crop,
                      cd::ResizePolicy::k_letterbox}) {
    try {
      cd::preprocess_into(bytes, {24, policy, cd::Normalization::k_imagenet}, out.data());
    } catch (const cd::DataError&) {
      return 0;
    }
  }
  return 0;
}
