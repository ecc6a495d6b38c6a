#include "util/hash.h"

#include <cstdio>
#include <cstring>

namespace cd {

std::uint64_t fnv1a64(std::string_view data, std::uint64_t seed) {
  std::uint64_t h = seed;
  for (unsigned char c : data) {
    h ^= c;
    h *= 0x100000001b3ULL;
  }
  return h;
}

namespace {

// Odd 64-bit constants: 2^64 over the golden ratio, and SplitMix64's two multipliers.
constexpr std::uint64_t k_golden = 0x9e3779b97f4a7c15ULL;
constexpr std::uint64_t k_mul_a = 0xbf58476d1ce4e5b9ULL;
constexpr std::uint64_t k_mul_b = 0x94d049bb133111ebULL;

std::uint64_t rotl(std::uint64_t x, int r) { return (x << r) | (x >> (64 - r)); }

std::uint64_t word_le(const unsigned char* p) {
  std::uint64_t v;
  std::memcpy(&v, p, sizeof v);  // one load
  if constexpr (__BYTE_ORDER__ == __ORDER_BIG_ENDIAN__) v = __builtin_bswap64(v);
  return v;
}

std::uint64_t lane_step(std::uint64_t acc, std::uint64_t word) {
  return rotl(acc + word * k_mul_a, 31) * k_golden;
}

std::uint64_t avalanche(std::uint64_t z) {
  z = (z ^ (z >> 30)) * k_mul_a;
  z = (z ^ (z >> 27)) * k_mul_b;
  return z ^ (z >> 31);
}

}  // namespace

std::uint64_t checksum64(std::string_view data) {
  const auto* p = reinterpret_cast<const unsigned char*>(data.data());
  const std::size_t n = data.size();
  std::uint64_t lane[4] = {k_golden, k_mul_a, k_mul_b, ~k_golden};
  std::size_t i = 0;
  for (; i + 32 <= n; i += 32) {
    lane[0] = lane_step(lane[0], word_le(p + i));
    lane[1] = lane_step(lane[1], word_le(p + i + 8));
    lane[2] = lane_step(lane[2], word_le(p + i + 16));
    lane[3] = lane_step(lane[3], word_le(p + i + 24));
  }
  std::uint64_t h = rotl(lane[0], 1) + rotl(lane[1], 7) + rotl(lane[2], 12) + rotl(lane[3], 18);
  h ^= static_cast<std::uint64_t>(n) * k_mul_b;
  for (; i + 8 <= n; i += 8) h = rotl(h ^ lane_step(0, word_le(p + i)), 27) * k_golden + k_mul_b;
  for (; i < n; ++i) h = rotl(h ^ (p[i] * k_mul_a), 11) * k_golden;
  return avalanche(h);
}

std::uint64_t mix_seed(std::uint64_t a, std::uint64_t b) {
  std::uint64_t z = a + 0x9e3779b97f4a7c15ULL * (b + 1);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

std::string hex64(std::uint64_t value) {
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(value));
  return buf;
}

}  // namespace cd
