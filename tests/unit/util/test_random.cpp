#include <catch2/catch.hpp>

#include <algorithm>

#include "util/random.h"

TEST_CASE("shuffled_indices is a seeded permutation, pinned across platforms", "[random]") {
  auto a = cd::shuffled_indices(10, 42);
  auto b = cd::shuffled_indices(10, 42);
  CHECK(a == b);
  auto sorted = a;
  std::sort(sorted.begin(), sorted.end());
  for (std::size_t i = 0; i < sorted.size(); ++i) CHECK(sorted[i] == i);
  CHECK(a != cd::shuffled_indices(10, 43));
  // Pinned: manifests and training orders depend on these exact values.
  CHECK(a == std::vector<std::size_t>{1, 7, 9, 0, 3, 8, 4, 2, 5, 6});
  CHECK(cd::shuffled_indices(0, 1).empty());
  CHECK(cd::shuffled_indices(1, 1) == std::vector<std::size_t>{0});
}

TEST_CASE("uniform draws stay between lo (included) and hi (excluded)", "[random]") {
  std::mt19937_64 rng(7);
  for (int i = 0; i < 1000; ++i) {
    double u = cd::uniform(rng, -2.0, 3.0);
    REQUIRE(u >= -2.0);
    REQUIRE(u < 3.0);
  }
}
