// A Classifier that needs no weights: P(dog) is the mean of each image's
// values, so a test can tell which answer belongs to which input, and every
// batch it was given is recorded.
#pragma once

#include <ATen/ATen.h>

#include <mutex>
#include <vector>

#include "nn/classifier.h"

namespace cd::test {

class FakeClassifier : public Classifier {
 public:
  explicit FakeClassifier(int size = 8) { m_meta.preprocess.size = size; }
  const ModelMeta& meta() const override { return m_meta; }
  void set_tta_flip(bool on) override { m_meta.tta_flip = on; }
  std::vector<float> predict(const at::Tensor& batch) override {
    {
      std::lock_guard<std::mutex> lock(m_mutex);
      m_batch_sizes.push_back(static_cast<int>(batch.size(0)));
    }
    at::Tensor p = batch.reshape({batch.size(0), -1}).mean(1).contiguous();
    return std::vector<float>(p.data_ptr<float>(), p.data_ptr<float>() + p.numel());
  }
  std::vector<int> batch_sizes() const {
    std::lock_guard<std::mutex> lock(m_mutex);
    return m_batch_sizes;
  }

 private:
  ModelMeta m_meta;
  mutable std::mutex m_mutex;
  std::vector<int> m_batch_sizes;
};

}  // namespace cd::test
