// Seeded randomness that is identical on every platform and standard
// library: std::shuffle's and std::uniform_real_distribution's algorithms
// are unspecified, so catdog draws from a fixed engine by hand.
#pragma once

#include <cstddef>
#include <cstdint>
#include <random>
#include <vector>

namespace cd {

// A seeded permutation of 0..n-1 (Fisher-Yates over mt19937_64).
std::vector<std::size_t> shuffled_indices(std::size_t n, std::uint64_t seed);

// Uniform double in [lo, hi) from the engine's top 53 bits.
double uniform(std::mt19937_64& rng, double lo, double hi);

}  // namespace cd
