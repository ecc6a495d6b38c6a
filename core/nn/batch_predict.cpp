#include "nn/batch_predict.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <chrono>

#include "domain/image.h"
#include "util/errors.h"
#include "util/parallel.h"
#include "util/strings.h"

namespace cd {

namespace {

double ms_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
}

// Decodes items[begin, end) into rows of batch; ok[i - begin] marks success.
void load_batch(std::vector<Prediction>& items, std::size_t begin, std::size_t end,
                const PreprocessSpec& spec, int threads, at::Tensor& batch, std::vector<char>& ok) {
  std::size_t per_image = 3 * static_cast<std::size_t>(spec.size) * spec.size;
  float* rows = batch.data_ptr<float>();
  parallel_for(begin, end, threads, [&](std::size_t i) {
    Prediction& item = items[i];
    if (!item.error.empty()) return;
    auto t0 = std::chrono::steady_clock::now();
    try {
      cv::Mat rgb = resize_by_policy(read_rgb(item.path), spec.size, spec.resize);
      to_chw_floats(rgb, spec.norm, rows + (i - begin) * per_image);
      ok[i - begin] = 1;
    } catch (const DataError& e) {
      std::string what = e.what();
      std::string prefix = "'" + item.path + "': ";
      item.error = starts_with(what, prefix) ? what.substr(prefix.size()) : what;
    }
    item.ms = ms_since(t0);
  });
}

}  // namespace

void predict_all(Classifier& model, std::vector<Prediction>& items, int batch_size, int threads,
                 const std::function<void(const Prediction&)>& done) {
  const PreprocessSpec& spec = model.meta().preprocess;
  batch_size = std::max(1, batch_size);
  for (std::size_t begin = 0; begin < items.size(); begin += batch_size) {
    std::size_t end = std::min(items.size(), begin + batch_size);
    at::Tensor batch =
        at::empty({static_cast<int64_t>(end - begin), 3, spec.size, spec.size}, at::kFloat);
    std::vector<char> ok(end - begin, 0);
    load_batch(items, begin, end, spec, threads, batch, ok);
    std::vector<int64_t> good;
    for (std::size_t j = 0; j < ok.size(); ++j)
      if (ok[j]) good.push_back(static_cast<int64_t>(j));
    if (!good.empty()) {
      auto t0 = std::chrono::steady_clock::now();
      at::Tensor x = good.size() == ok.size() ? batch : batch.index_select(0, at::tensor(good));
      std::vector<float> p = model.predict(x);
      double share = ms_since(t0) / static_cast<double>(good.size());
      for (std::size_t k = 0; k < good.size(); ++k) {
        Prediction& item = items[begin + static_cast<std::size_t>(good[k])];
        item.p_dog = p[k];
        item.ms += share;
      }
    }
    for (std::size_t i = begin; i < end; ++i) done(items[i]);
  }
}

}  // namespace cd
