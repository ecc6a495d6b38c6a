// Small, dependency-free hashing: content hashes for duplicate detection and
// data fingerprints, and seed mixing for counter-based random streams.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace cd {

// 64-bit FNV-1a. Not cryptographic: callers compare bytes when hashes match.
std::uint64_t fnv1a64(std::string_view data, std::uint64_t seed = 0xcbf29ce484222325ULL);

// SplitMix64 finaliser: mixes (a, b) into a well-spread 64-bit value.
std::uint64_t mix_seed(std::uint64_t a, std::uint64_t b);

std::string hex64(std::uint64_t value);

}  // namespace cd
