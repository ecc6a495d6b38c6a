// A Predictor that needs no weights and no LibTorch: P(dog) is the mean of
// each image's values, so a test can tell which answer belongs to which
// input, and every batch it was given is recorded.
#pragma once

#include <cstddef>
#include <mutex>
#include <numeric>
#include <string>
#include <vector>

#include "runtime/predictor.h"

namespace cd::test {

class FakePredictor : public Predictor {
 public:
  explicit FakePredictor(int size = 8) { m_meta.preprocess.size = size; }
  const ModelMeta& meta() const override { return m_meta; }
  void set_tta_flip(bool on) override { m_meta.tta_flip = on; }
  std::string runtime() const override { return "fake"; }
  std::vector<float> predict(const float* images, std::size_t n) override {
    {
      std::lock_guard<std::mutex> lock(m_mutex);
      m_batch_sizes.push_back(static_cast<int>(n));
    }
    std::size_t per_image =
        3 * static_cast<std::size_t>(m_meta.preprocess.size) * m_meta.preprocess.size;
    std::vector<float> p(n);
    for (std::size_t i = 0; i < n; ++i)
      p[i] = std::accumulate(images + i * per_image, images + (i + 1) * per_image, 0.0f) /
             static_cast<float>(per_image);
    return p;
  }
  std::vector<int> batch_sizes() const {
    std::lock_guard<std::mutex> lock(m_mutex);
    return m_batch_sizes;
  }
  // own_weights() calls, with the number of batches run before each.
  void own_weights() override {
    std::lock_guard<std::mutex> lock(m_mutex);
    m_owned_after.push_back(static_cast<int>(m_batch_sizes.size()));
  }
  std::vector<int> owned_after() const {
    std::lock_guard<std::mutex> lock(m_mutex);
    return m_owned_after;
  }

 private:
  ModelMeta m_meta;
  mutable std::mutex m_mutex;
  std::vector<int> m_batch_sizes;
  std::vector<int> m_owned_after;
};

}  // namespace cd::test
