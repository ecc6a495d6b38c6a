#include "util/parallel.h"

#include <algorithm>
#include <atomic>
#include <system_error>
#include <thread>
#include <vector>

namespace cd {

void parallel_for(std::size_t begin, std::size_t end, int threads,
                  const std::function<void(std::size_t)>& body) {
  if (begin >= end) return;
  std::atomic<std::size_t> next{begin};
  auto worker = [&] {
    for (std::size_t i = next++; i < end; i = next++) body(i);
  };
  std::size_t items = end - begin;
  int n = std::max(1, static_cast<int>(std::min<std::size_t>(items, std::max(1, threads))));
  std::vector<std::thread> pool;
  pool.reserve(static_cast<std::size_t>(n - 1));
  for (int t = 1; t < n; ++t) {
    try {
      pool.emplace_back(worker);
    } catch (const std::system_error&) {
      break;  // no more threads to be had: the ones there are share the items
    }
  }
  worker();
  for (auto& t : pool) t.join();
}

int hardware_threads() {
  return static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
}

}  // namespace cd
