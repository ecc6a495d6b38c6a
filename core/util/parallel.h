// The one thread pool pattern catdog needs: items 0..n-1 handed out through
// an atomic counter to a few threads, the calling thread working too.
#pragma once

#include <cstddef>
#include <functional>

namespace cd {

// Runs body(i) for every i in [begin, end) on up to `threads` threads (the
// caller is one of them), and returns when all are done. body must not
// throw: catch inside and record the error per item.
void parallel_for(std::size_t begin, std::size_t end, int threads,
                  const std::function<void(std::size_t)>& body);

// std::thread::hardware_concurrency(), at least 1.
int hardware_threads();

}  // namespace cd
