// A LibTorch CPU allocator for serving (cd-serve asks for it through
// RuntimeOptions::tensor_cache_bytes). Every request and every forward pass
// allocates and frees the same buffers of 64 KiB to a few MB (the image
// tensor, activations). Through malloc they share one heap with the HTTP
// threads' decode buffers, the holes they leave get split, and the heap grew
// to ~160 MB with ~60 MB in use at 64 clients. Here each such buffer is its
// own mapping, kept after use and handed to the next request of a close
// size, so a steady load faults no pages and fragments nothing (peak RSS at
// 64 clients: ~340 -> ~270 MB). Smaller buffers still go to malloc.
#pragma once

#include <cstddef>

namespace cd {

struct BufferCacheStats {
  std::size_t mapped_bytes = 0;  // in use and idle
  std::size_t idle_bytes = 0;    // kept for reuse
  std::size_t reused = 0;        // allocations served from the idle buffers
  std::size_t mapped = 0;        // allocations that mapped a new buffer
};

// Buffers of at least this many bytes are cached.
constexpr std::size_t k_cached_buffer_min = std::size_t{64} << 10;

// Makes the cache LibTorch's CPU allocator for the rest of the process.
// Idle buffers beyond idle_limit bytes are unmapped, least recently used
// first. Buffers allocated before keep their own deleter. Idempotent.
void install_buffer_cache(std::size_t idle_limit);

// All zeros until installed.
BufferCacheStats buffer_cache_stats();

}  // namespace cd
