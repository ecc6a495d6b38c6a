#include <catch2/catch.hpp>

#include <cstdlib>

#include "cd-train/augment.h"
#include "domain/image.h"
#include "helpers.h"
#include "util/atomic_file.h"

namespace {

// Sum of absolute byte differences; images of one size.
long difference(const cd::RgbImage& a, const cd::RgbImage& b) {
  REQUIRE((a.width() == b.width() && a.height() == b.height()));
  long sum = 0;
  for (std::size_t i = 0; i < a.size_bytes(); ++i) sum += std::abs(a.data()[i] - b.data()[i]);
  return sum;
}

}  // namespace

TEST_CASE("augmentation is deterministic per seed and changes the image", "[augment]") {
  cd::RgbImage img = cd::resize_by_policy(
      cd::decode_rgb(cd::read_file(cd::test::source_path("tests/fixtures/photos/dog.1.jpg"))), 64,
      cd::ResizePolicy::k_stretch);
  cd::Augmentation aug;
  cd::RgbImage a = cd::augment(img, aug, 7), b = cd::augment(img, aug, 7),
               c = cd::augment(img, aug, 8);
  CHECK(difference(a, b) == 0);
  CHECK(difference(a, c) > 0);
  CHECK(difference(a, img) > 0);
  cd::Augmentation none{0, 0, 0, false};
  CHECK(difference(cd::augment(img, none, 3), img) == 0);
  // A mirror alone turns the first column into the last.
  cd::Augmentation mirror{0, 0, 0, true};
  for (std::uint64_t seed = 0; seed < 8; ++seed) {
    cd::RgbImage m = cd::augment(img, mirror, seed);
    if (difference(m, img) == 0) continue;  // this seed did not flip
    CHECK(m.row(5)[0] == img.row(5)[3 * 63]);
    CHECK(m.row(5)[3 * 63 + 2] == img.row(5)[2]);
    return;
  }
  FAIL("no seed of 8 mirrored the image");
}
