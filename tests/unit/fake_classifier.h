// The fake Predictor (fake_predictor.h) behind the Classifier's tensor
// interface, for tests of code that hands LibTorch tensors to a model.
#pragma once

#include <ATen/ATen.h>

#include <vector>

#include "fake_predictor.h"
#include "nn/classifier.h"

namespace cd::test {

// The same model behind the tensor interface.
class FakeClassifier : public Classifier {
 public:
  explicit FakeClassifier(int size = 8) : m_model(size) {}
  const ModelMeta& meta() const override { return m_model.meta(); }
  void set_tta_flip(bool on) override { m_model.set_tta_flip(on); }
  std::vector<float> predict(const at::Tensor& batch) override {
    at::Tensor floats = batch.to(at::kFloat).contiguous();
    return m_model.predict(floats.data_ptr<float>(), static_cast<std::size_t>(batch.size(0)));
  }
  std::vector<int> batch_sizes() const { return m_model.batch_sizes(); }

 private:
  FakePredictor m_model;
};

}  // namespace cd::test
