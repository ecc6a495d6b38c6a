#include <catch2/catch.hpp>

#include "util/hash.h"

TEST_CASE("FNV-1a matches its published test vectors", "[hash]") {
  CHECK(cd::fnv1a64("") == 0xcbf29ce484222325ULL);
  CHECK(cd::fnv1a64("a") == 0xaf63dc4c8601ec8cULL);
  CHECK(cd::hex64(0xabcULL) == "0000000000000abc");
  CHECK(cd::mix_seed(1, 2) != cd::mix_seed(2, 1));
}
