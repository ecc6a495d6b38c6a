#include "catdog/predict.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <filesystem>
#include <istream>
#include <thread>

#include "catdog/errors.h"
#include "catdog/image.h"

namespace cd {

namespace fs = std::filesystem;

namespace {

double ms_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
}

void add_path(const std::string& arg, std::vector<Prediction>& out) {
  std::error_code ec;
  fs::file_status st = fs::status(arg, ec);
  if (!fs::exists(st)) {
    out.push_back({arg, "no such file or directory"});
    return;
  }
  if (!fs::is_directory(st)) {
    out.push_back({arg, ""});
    return;
  }
  std::vector<std::string> files;
  for (auto it = fs::recursive_directory_iterator(arg, fs::directory_options::skip_permission_denied, ec);
       it != fs::recursive_directory_iterator(); it.increment(ec)) {
    if (ec) break;
    if (it->is_regular_file(ec) && has_image_extension(it->path().string())) files.push_back(it->path().string());
  }
  std::sort(files.begin(), files.end());
  if (files.empty()) out.push_back({arg, "directory holds no images (jpg, jpeg, png, bmp, webp)"});
  for (auto& f : files) out.push_back({f, ""});
}

}  // namespace

std::vector<Prediction> expand_inputs(const std::vector<std::string>& args, std::istream& in) {
  std::vector<Prediction> out;
  for (const auto& arg : args) {
    if (arg != "-") {
      add_path(arg, out);
      continue;
    }
    std::string line;
    while (std::getline(in, line)) {
      if (!line.empty() && line.back() == '\r') line.pop_back();
      if (!line.empty()) add_path(line, out);
    }
  }
  return out;
}

void predict_all(Classifier& model, std::vector<Prediction>& items, int batch_size, int threads,
                 const std::function<void(const Prediction&)>& done) {
  const PreprocessSpec& spec = model.meta().preprocess;
  std::size_t per_image = 3 * static_cast<std::size_t>(spec.size) * spec.size;
  batch_size = std::max(1, batch_size);
  for (std::size_t begin = 0; begin < items.size(); begin += batch_size) {
    std::size_t end = std::min(items.size(), begin + batch_size);
    at::Tensor batch = at::empty({static_cast<int64_t>(end - begin), 3, spec.size, spec.size}, at::kFloat);
    std::vector<char> ok(end - begin, 0);
    std::atomic<std::size_t> next{begin};
    auto worker = [&] {
      for (std::size_t i = next++; i < end; i = next++) {
        Prediction& item = items[i];
        if (!item.error.empty()) continue;
        auto t0 = std::chrono::steady_clock::now();
        try {
          cv::Mat rgb = resize_by_policy(read_rgb(item.path), spec.size, spec.resize);
          to_chw_floats(rgb, spec.norm, batch.data_ptr<float>() + (i - begin) * per_image);
          ok[i - begin] = 1;
        } catch (const DataError& e) {
          std::string what = e.what();
          std::string prefix = "'" + item.path + "': ";
          item.error = what.rfind(prefix, 0) == 0 ? what.substr(prefix.size()) : what;
        }
        item.ms = ms_since(t0);
      }
    };
    std::vector<std::thread> pool;
    int n_threads = std::max(1, std::min<int>(threads, static_cast<int>(end - begin)));
    for (int t = 1; t < n_threads; ++t) pool.emplace_back(worker);
    worker();
    for (auto& t : pool) t.join();
    std::vector<int64_t> good;
    for (std::size_t j = 0; j < ok.size(); ++j)
      if (ok[j]) good.push_back(static_cast<int64_t>(j));
    if (!good.empty()) {
      auto t0 = std::chrono::steady_clock::now();
      at::Tensor x = good.size() == ok.size() ? batch : batch.index_select(0, at::tensor(good));
      std::vector<float> p = model.predict(x);
      double share = ms_since(t0) / good.size();
      for (std::size_t k = 0; k < good.size(); ++k) {
        Prediction& item = items[begin + good[k]];
        item.p_dog = p[k];
        item.ms += share;
      }
    }
    for (std::size_t i = begin; i < end; ++i) done(items[i]);
  }
}

}  // namespace cd
