// Small, dependency-free hashing: content hashes for duplicate detection and
// data fingerprints, and seed mixing for counter-based random streams.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace cd {

// 64-bit FNV-1a. Not cryptographic: callers compare bytes when hashes match.
// One byte per step, each waiting on the last: about 1 GB/s.
std::uint64_t fnv1a64(std::string_view data, std::uint64_t seed = 0xcbf29ce484222325ULL);

// The model file's checksum since format 4 (domain/model_file.h): four
// independent multiply-rotate lanes over 8-byte little-endian words, folded
// with the length and the tail, then avalanched. About 10x FNV-1a's speed, so
// a 40 MB model is checked in milliseconds at every load. Not cryptographic:
// it catches corruption, not tampering. tests/e2e/common.py has the same
// function in Python.
std::uint64_t checksum64(std::string_view data);

// SplitMix64 finaliser: mixes (a, b) into a well-spread 64-bit value.
std::uint64_t mix_seed(std::uint64_t a, std::uint64_t b);

std::string hex64(std::uint64_t value);

}  // namespace cd
