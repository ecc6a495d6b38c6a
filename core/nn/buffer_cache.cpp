#include "nn/buffer_cache.h"

#include <c10/core/Allocator.h>
#include <c10/core/CPUAllocator.h>
#include <c10/core/impl/alloc_cpu.h>
#include <sys/mman.h>

#include <cstdint>
#include <map>
#include <mutex>
#include <new>
#include <unordered_map>

namespace cd {

namespace {

constexpr std::size_t k_granule = std::size_t{4} << 10;  // sizes round up to pages

class BufferCache final : public c10::Allocator {
 public:
  explicit BufferCache(std::size_t idle_limit) : m_idle_limit(idle_limit) {}

  // Small buffers are malloc's and free themselves without the cache's lock.
  c10::DataPtr allocate(std::size_t n) const override {
    const c10::Device cpu(c10::DeviceType::CPU);
    if (n < k_cached_buffer_min) {
      void* p = c10::alloc_cpu(n);
      return {p, p, &c10::free_cpu, cpu};
    }
    void* p = take(n);
    return {p, p, &release, cpu};
  }
  // raw_allocate() keeps one deleter for both kinds; release() tells them apart.
  c10::DeleterFnPtr raw_deleter() const override { return &release; }

  BufferCacheStats stats() const {
    std::lock_guard<std::mutex> lock(m_mutex);
    return m_stats;
  }

  static BufferCache* instance;

 private:
  struct Idle {
    void* p;
    std::uint64_t last_used;
  };

  // The smallest idle buffer that fits, if it is at most twice the size (so
  // a batch of 4's buffers also serve batches of 2 and 3); else a new mapping.
  void* take(std::size_t n) const {
    std::size_t size = (n + k_granule - 1) / k_granule * k_granule;
    {
      std::lock_guard<std::mutex> lock(m_mutex);
      auto it = m_idle.lower_bound(size);
      if (it != m_idle.end() && it->first <= 2 * size) {
        void* p = it->second.p;
        m_stats.idle_bytes -= it->first;
        m_live.emplace(p, it->first);
        m_idle.erase(it);
        ++m_stats.reused;
        return p;
      }
    }
    void* p = mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) throw std::bad_alloc();
    std::lock_guard<std::mutex> lock(m_mutex);
    m_live.emplace(p, size);
    m_stats.mapped_bytes += size;
    ++m_stats.mapped;
    return p;
  }

  void give_back(void* p) {
    std::lock_guard<std::mutex> lock(m_mutex);
    auto it = m_live.find(p);
    if (it == m_live.end()) {  // a small buffer
      c10::free_cpu(p);
      return;
    }
    std::size_t size = it->second;
    m_live.erase(it);
    m_idle.emplace(size, Idle{p, ++m_clock});
    m_stats.idle_bytes += size;
    while (m_stats.idle_bytes > m_idle_limit && !m_idle.empty()) {
      auto oldest = m_idle.begin();
      for (auto i = m_idle.begin(); i != m_idle.end(); ++i)
        if (i->second.last_used < oldest->second.last_used) oldest = i;
      munmap(oldest->second.p, oldest->first);
      m_stats.idle_bytes -= oldest->first;
      m_stats.mapped_bytes -= oldest->first;
      m_idle.erase(oldest);
    }
  }

  static void release(void* p) {
    if (p) instance->give_back(p);
  }

  std::size_t m_idle_limit;
  mutable std::mutex m_mutex;
  mutable std::unordered_map<void*, std::size_t> m_live;
  mutable std::multimap<std::size_t, Idle> m_idle;
  mutable BufferCacheStats m_stats;
  std::uint64_t m_clock = 0;
};

BufferCache* BufferCache::instance = nullptr;

}  // namespace

void install_buffer_cache(std::size_t idle_limit) {
  static std::once_flag once;
  std::call_once(once, [idle_limit] {
    // Never destroyed: tensors may be freed during static destruction.
    BufferCache::instance = new BufferCache(idle_limit);
    c10::SetCPUAllocator(BufferCache::instance, /*priority=*/1);
  });
}

BufferCacheStats buffer_cache_stats() {
  return BufferCache::instance ? BufferCache::instance->stats() : BufferCacheStats{};
}

}  // namespace cd
