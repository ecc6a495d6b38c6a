// Training data in memory: every image decoded and resized once into an 8-bit
// cache, then augmented and normalised into batches by worker threads that
// run ahead of the model, in a fixed order so runs are reproducible.
#pragma once

#include <ATen/Tensor.h>

#include <condition_variable>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "cd-train/augment.h"
#include "domain/image.h"
#include "domain/manifest.h"

namespace cd {

class ImageCache {
 public:
  // Throws DataError naming the manifest when an image cannot be read. With
  // world > 1 only rows rank, rank + world, ... are decoded (the rows a rank of
  // a data-parallel frozen run embeds); the others stay empty.
  ImageCache(const std::vector<Sample>& samples, int size, ResizePolicy policy, int threads,
             const std::string& origin, int rank = 0, int world = 1);
  std::size_t size() const { return m_images.size(); }
  const RgbImage& image(std::size_t i) const { return m_images[i]; }
  int label(std::size_t i) const { return m_labels[i]; }

 private:
  std::vector<RgbImage> m_images;
  std::vector<int> m_labels;
};

struct Batch {
  at::Tensor x;  // float [N,3,S,S]
  at::Tensor y;  // float [N]
};

// One epoch's batches, produced ahead by worker threads, handed out in order.
class BatchStream {
 public:
  BatchStream(const ImageCache& cache, std::vector<std::size_t> order, int batch_size,
              const Augmentation* augmentation, std::uint64_t seed, Normalization norm, int workers,
              int prefetch = 4);
  ~BatchStream();
  std::size_t batches() const { return m_batches; }
  bool next(Batch& out);

 private:
  void work();
  Batch build(std::size_t b) const;

  const ImageCache& m_cache;
  std::vector<std::size_t> m_order;
  int m_batch_size;
  const Augmentation* m_aug;
  std::uint64_t m_seed;
  Normalization m_norm;
  std::size_t m_prefetch;
  std::size_t m_batches;
  std::size_t m_next_make = 0, m_next_take = 0;
  bool m_stop = false;
  std::map<std::size_t, Batch> m_ready;
  std::mutex m_mutex;
  std::condition_variable m_changed;
  std::vector<std::thread> m_threads;
};

}  // namespace cd
