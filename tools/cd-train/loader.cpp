#include "cd-train/loader.h"

#include <ATen/ATen.h>

#include "util/errors.h"
#include "util/hash.h"
#include "util/parallel.h"
#include "util/progress.h"

namespace cd {

ImageCache::ImageCache(const std::vector<Sample>& samples, int size, ResizePolicy policy,
                       int threads, const std::string& origin, int rank, int world)
    : m_images(samples.size()), m_labels(samples.size()) {
  std::mutex error_mutex;
  std::string first_error;
  Progress progress("cache " + origin, samples.size());
  parallel_for(0, samples.size(), threads, [&](std::size_t i) {
    try {
      if (static_cast<int>(i % static_cast<std::size_t>(world)) == rank)
        m_images[i] = resize_by_policy(read_rgb(samples[i].path), size, policy);
    } catch (const DataError& e) {
      std::lock_guard<std::mutex> lock(error_mutex);
      if (first_error.empty()) first_error = e.what();
    }
    m_labels[i] = samples[i].label;
    progress.advance();
  });
  progress.finish();
  if (!first_error.empty())
    throw DataError(origin + " lists an image that cannot be used: " + first_error +
                    "; rerun cd-prepare on the source folder");
}

BatchStream::BatchStream(const ImageCache& cache, std::vector<std::size_t> order, int batch_size,
                         const Augmentation* augmentation, std::uint64_t seed, Normalization norm,
                         int workers, int prefetch)
    : m_cache(cache),
      m_order(std::move(order)),
      m_batch_size(batch_size),
      m_aug(augmentation),
      m_seed(seed),
      m_norm(norm),
      m_prefetch(static_cast<std::size_t>(std::max(1, prefetch))),
      m_batches((m_order.size() + batch_size - 1) / batch_size) {
  // The workers are the parallelism: OpenCV's pool inside each warp would
  // only add threads fighting LibTorch's for the cores.
  if (m_aug) keep_opencv_single_threaded();
  for (int w = 0; w < std::max(1, workers); ++w) m_threads.emplace_back([this] { work(); });
}

BatchStream::~BatchStream() {
  {
    std::lock_guard<std::mutex> lock(m_mutex);
    m_stop = true;
  }
  m_changed.notify_all();
  for (auto& t : m_threads) t.join();
}

Batch BatchStream::build(std::size_t b) const {
  std::size_t begin = b * m_batch_size;
  std::size_t end = std::min(m_order.size(), begin + m_batch_size);
  const RgbImage& first = m_cache.image(m_order[begin]);
  Batch batch;
  batch.x =
      at::empty({static_cast<int64_t>(end - begin), 3, first.height(), first.width()}, at::kFloat);
  batch.y = at::empty({static_cast<int64_t>(end - begin)}, at::kFloat);
  float* x = batch.x.data_ptr<float>();
  float* y = batch.y.data_ptr<float>();
  std::size_t per_image = 3 * static_cast<std::size_t>(first.height()) * first.width();
  for (std::size_t i = begin; i < end; ++i) {
    std::size_t index = m_order[i];
    const RgbImage& img = m_cache.image(index);
    // The augmentation seed depends on the sample and the epoch only, not on
    // which thread builds it, so every run and resume sees the same pixels.
    if (m_aug)
      to_chw_floats(augment(img, *m_aug, mix_seed(m_seed, index)), m_norm,
                    x + (i - begin) * per_image);
    else
      to_chw_floats(img, m_norm, x + (i - begin) * per_image);
    y[i - begin] = static_cast<float>(m_cache.label(index));
  }
  return batch;
}

void BatchStream::work() {
  for (;;) {
    std::size_t b;
    {
      std::unique_lock<std::mutex> lock(m_mutex);
      m_changed.wait(lock, [this] {
        return m_stop || m_next_make >= m_batches || m_next_make < m_next_take + m_prefetch;
      });
      if (m_stop || m_next_make >= m_batches) return;
      b = m_next_make++;
    }
    Batch batch = build(b);
    {
      std::lock_guard<std::mutex> lock(m_mutex);
      m_ready.emplace(b, std::move(batch));
    }
    m_changed.notify_all();
  }
}

bool BatchStream::next(Batch& out) {
  std::unique_lock<std::mutex> lock(m_mutex);
  if (m_next_take >= m_batches) return false;
  m_changed.wait(lock, [this] { return m_ready.count(m_next_take) > 0; });
  auto it = m_ready.find(m_next_take);
  out = std::move(it->second);
  m_ready.erase(it);
  ++m_next_take;
  lock.unlock();
  m_changed.notify_all();
  return true;
}

}  // namespace cd
