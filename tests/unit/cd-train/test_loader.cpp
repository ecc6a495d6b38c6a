#include "catch_torch.h"

#include <numeric>

#include "cd-train/loader.h"
#include "helpers.h"
#include "util/errors.h"
#include "util/random.h"

using cd::test::source_path;

namespace {

std::vector<cd::Batch> drain(cd::BatchStream& stream) {
  std::vector<cd::Batch> out;
  cd::Batch b;
  while (stream.next(b)) out.push_back(b);
  return out;
}

}  // namespace

TEST_CASE("the batch stream hands out batches in the given order, the last one short", "[loader]") {
  cd::ImageCache cache(cd::test::fixture_photos(), 16, cd::ResizePolicy::k_stretch, 2, "fixtures");
  REQUIRE(cache.size() == 8);
  std::vector<std::size_t> order{7, 0, 5, 2, 1};
  cd::BatchStream stream(cache, order, /*batch_size=*/2, nullptr, 0, cd::Normalization::k_unit,
                         /*workers=*/3, /*prefetch=*/1);
  CHECK(stream.batches() == 3);
  auto batches = drain(stream);
  REQUIRE(batches.size() == 3);
  CHECK(batches[2].x.size(0) == 1);
  std::size_t k = 0;
  for (const auto& b : batches)
    for (int64_t i = 0; i < b.x.size(0); ++i, ++k) {
      std::size_t index = order[k];
      CHECK(b.y[i].item<float>() == static_cast<float>(cache.label(index)));
      // Unaugmented rows are exactly the cached image, normalised.
      at::Tensor expected = at::empty({3, 16, 16});
      cd::to_chw_floats(cache.image(index), cd::Normalization::k_unit, expected.data_ptr<float>());
      CHECK(at::equal(b.x[i], expected));
    }
}

TEST_CASE("augmented batches depend on the seed, not on the number of workers", "[loader]") {
  cd::ImageCache cache(cd::test::fixture_photos(), 16, cd::ResizePolicy::k_stretch, 1, "fixtures");
  cd::Augmentation aug;
  auto order = cd::shuffled_indices(cache.size(), 9);
  auto run = [&](int workers, std::uint64_t seed) {
    cd::BatchStream stream(cache, order, 3, &aug, seed, cd::Normalization::k_unit, workers);
    return drain(stream);
  };
  auto one = run(1, 5), four = run(4, 5), other = run(1, 6);
  REQUIRE(one.size() == four.size());
  bool differs = false;
  for (std::size_t b = 0; b < one.size(); ++b) {
    CHECK(at::equal(one[b].x, four[b].x));
    differs |= !at::equal(one[b].x, other[b].x);
  }
  CHECK(differs);
}

TEST_CASE("a stream dropped half-way stops its workers", "[loader]") {
  cd::ImageCache cache(cd::test::fixture_photos(), 16, cd::ResizePolicy::k_stretch, 1, "fixtures");
  {
    std::vector<std::size_t> all(cache.size());
    std::iota(all.begin(), all.end(), 0);
    cd::BatchStream stream(cache, all, 1, nullptr, 0, cd::Normalization::k_unit, 2, 2);
    cd::Batch b;
    REQUIRE(stream.next(b));
  }  // destructor joins the workers while batches are still pending
}

TEST_CASE("a rank of a frozen group decodes only its interleaved rows", "[loader]") {
  auto photos = cd::test::fixture_photos();
  cd::ImageCache cache(photos, 16, cd::ResizePolicy::k_stretch, 1, "fixtures", 1, 3);
  REQUIRE(cache.size() == photos.size());
  for (std::size_t i = 0; i < cache.size(); ++i) {
    CHECK(cache.image(i).empty() == (i % 3 != 1));
    CHECK(cache.label(i) == photos[i].label);
  }
}

TEST_CASE("the cache names the manifest when an image is unusable", "[loader]") {
  auto samples = cd::test::fixture_photos();
  samples[3].path = "/nonexistent/dog.9.jpg";
  CHECK_THROWS_WITH(cd::ImageCache(samples, 16, cd::ResizePolicy::k_stretch, 2, "train.csv"),
                    Catch::StartsWith("train.csv lists an image that cannot be used") &&
                        Catch::Contains("rerun cd-prepare"));
}
