#include "catch_torch.h"

#include <c10/core/CPUAllocator.h>

#include <thread>
#include <vector>

#include "nn/buffer_cache.h"

using cd::buffer_cache_stats;
using cd::k_cached_buffer_min;

namespace {

constexpr std::size_t k_idle_limit = std::size_t{48} << 20;

// An odd size that no other test allocates, so the buffer found is ours.
constexpr std::int64_t k_floats = 1234567;  // 4.7 MB

}  // namespace

TEST_CASE("the buffer cache hands a freed large buffer to the next request of its size",
          "[buffer_cache]") {
  cd::install_buffer_cache(k_idle_limit);
  REQUIRE(c10::GetCPUAllocator() != c10::GetDefaultCPUAllocator());
  auto before = buffer_cache_stats();
  void* first = nullptr;
  {
    at::Tensor t = at::empty({k_floats}, at::kFloat);
    t.fill_(3.0f);
    first = t.data_ptr();
  }
  auto freed = buffer_cache_stats();
  CHECK(freed.idle_bytes >= static_cast<std::size_t>(k_floats) * sizeof(float));
  at::Tensor again = at::empty({k_floats}, at::kFloat);
  CHECK(again.data_ptr() == first);  // reused, not mapped afresh
  auto after = buffer_cache_stats();
  CHECK(after.reused == freed.reused + 1);
  CHECK(after.mapped == freed.mapped);
  CHECK(freed.mapped >= before.mapped + 1);
  again.fill_(1.0f);  // usable memory
  CHECK(again.sum().item<double>() == Approx(static_cast<double>(k_floats)));
}

TEST_CASE("small buffers bypass the cache, and idle buffers stay under the limit",
          "[buffer_cache]") {
  cd::install_buffer_cache(k_idle_limit);
  auto before = buffer_cache_stats();
  {
    at::Tensor small = at::ones({16}, at::kFloat);
    CHECK(small.sum().item<float>() == 16.0f);
  }
  CHECK(buffer_cache_stats().mapped == before.mapped);
  CHECK(buffer_cache_stats().reused == before.reused);
  {
    // Three 20 MB buffers alive at once, then idle: 60 MB > the 48 MB limit.
    std::vector<at::Tensor> big;
    for (int i = 0; i < 3; ++i) big.push_back(at::empty({5 << 20}, at::kFloat).fill_(i));
  }
  auto after = buffer_cache_stats();
  CHECK(after.idle_bytes <= k_idle_limit);
  CHECK(after.idle_bytes <= after.mapped_bytes);
}

TEST_CASE("the buffer cache serves threads that allocate and free at once", "[buffer_cache]") {
  cd::install_buffer_cache(k_idle_limit);
  auto before = buffer_cache_stats();
  std::vector<std::thread> threads;
  std::vector<double> sums(4, 0.0);
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([t, &sums] {
      for (int i = 0; i < 50; ++i) {
        at::Tensor x = at::full({static_cast<std::int64_t>(k_cached_buffer_min / 4) * (1 + i % 3)},
                                static_cast<float>(t), at::kFloat);
        sums[t] += x[0].item<float>();
      }
    });
  for (auto& th : threads) th.join();
  for (int t = 0; t < 4; ++t) CHECK(sums[t] == Approx(50.0 * t));
  auto after = buffer_cache_stats();
  CHECK(after.reused + after.mapped == before.reused + before.mapped + 200);  // all through it
  CHECK(after.reused > before.reused);
}
