#include <catch2/catch.hpp>

#include "util/hash.h"

TEST_CASE("FNV-1a matches its published test vectors", "[hash]") {
  CHECK(cd::fnv1a64("") == 0xcbf29ce484222325ULL);
  CHECK(cd::fnv1a64("a") == 0xaf63dc4c8601ec8cULL);
  CHECK(cd::hex64(0xabcULL) == "0000000000000abc");
  CHECK(cd::mix_seed(1, 2) != cd::mix_seed(2, 1));
}

TEST_CASE("checksum64 agrees with its Python twin and sees every byte", "[hash]") {
  // The values tests/e2e/common.py's checksum64 gives: the test helpers that
  // rewrite model files must end them as catdog does.
  std::string blocks;
  for (int r = 0; r < 3; ++r)
    for (int c = 0; c < 256; ++c) blocks += static_cast<char>(c);
  CHECK(cd::checksum64("") == 0x261677a0c469ed51ULL);
  CHECK(cd::checksum64("a") == 0x4e28123bfdba656fULL);
  CHECK(cd::checksum64("catdog") == 0xc2ffdd274920a2b9ULL);
  CHECK(cd::checksum64(blocks + "xyz") == 0x132989a7bc9f326cULL);
  // One flipped bit anywhere (each lane, the 8-byte tail, the last bytes)
  // and one byte more or fewer change the sum.
  std::string base(75, '\0');
  for (std::size_t i = 0; i < base.size(); ++i) base[i] = static_cast<char>(i * 37);
  const std::uint64_t sum = cd::checksum64(base);
  for (std::size_t i = 0; i < base.size(); ++i) {
    std::string flipped = base;
    flipped[i] = static_cast<char>(flipped[i] ^ 0x10);
    INFO(i);
    CHECK(cd::checksum64(flipped) != sum);
  }
  CHECK(cd::checksum64(base + '\0') != sum);
  CHECK(cd::checksum64(base.substr(1)) != sum);
}
