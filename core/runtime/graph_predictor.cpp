// The Predictor on catdog's oneDNN runtime (runtime/executor.h): a model
// file's inference graph, with test-time flip done here (both views in one
// batch, so --tta can switch it), or an exported .onnx file's graph, which
// holds its flip itself.
#include <cmath>
#include <cstring>

#include "domain/model_file.h"
#include "runtime/executor.h"
#include "runtime/predictor.h"
#include "util/atomic_file.h"
#include "util/errors.h"

namespace cd {

namespace {

class GraphPredictor : public Predictor {
 public:
  GraphPredictor(std::string origin, ModelMeta meta, InferenceGraph graph, int threads,
                 bool exported)
      : m_origin(std::move(origin)),
        m_meta(std::move(meta)),
        m_executor(std::move(graph), threads),
        m_exported(exported),
        m_flip(m_meta.tta_flip && !exported) {}

  const ModelMeta& meta() const override { return m_meta; }

  std::vector<float> predict(const float* images, std::size_t n) override {
    try {
      return checked(run(images, n), n);
    } catch (const ModelError& e) {
      throw ModelError(m_origin + ": " + e.what());
    }
  }

  std::vector<float> run(const float* images, std::size_t n) {
    const std::int64_t side = m_meta.preprocess.size;
    const std::size_t per_image = 3 * static_cast<std::size_t>(side) * side;
    std::vector<float> out;
    if (!m_flip) {
      out = m_executor.run(images, static_cast<std::int64_t>(n), side);
    } else {
      // Each image and its mirror image in one batch of 2n; P(dog) averaged.
      std::vector<float> both(2 * n * per_image);
      std::memcpy(both.data(), images, n * per_image * sizeof(float));
      float* mirrored = both.data() + n * per_image;
      for (std::size_t row = 0; row < n * 3 * static_cast<std::size_t>(side); ++row) {
        const float* from = images + row * side;
        float* to = mirrored + row * side;
        for (std::int64_t x = 0; x < side; ++x) to[x] = from[side - 1 - x];
      }
      std::vector<float> p = m_executor.run(both.data(), static_cast<std::int64_t>(2 * n), side);
      out.resize(n);
      if (p.size() != 2 * n) return p;  // checked() names the mismatch
      for (std::size_t i = 0; i < n; ++i) out[i] = 0.5f * (p[i] + p[n + i]);
    }
    return out;
  }

  static std::vector<float> checked(std::vector<float> out, std::size_t n) {
    if (out.size() != n)
      throw ModelError("the model's graph gives " + std::to_string(out.size()) + " values for " +
                       std::to_string(n) + " images, not one each");
    for (float p : out)
      if (!std::isfinite(p)) throw ModelError("the model gave a non-finite P(dog)");
    return out;
  }

  void set_tta_flip(bool on) override {
    if (m_exported && on != m_meta.tta_flip)
      throw UsageError(
          std::string("test-time flip is fixed inside an exported .onnx file (it is ") +
          (m_meta.tta_flip ? "on" : "off") +
          " here); export again from a model file with the setting you want");
    if (!m_exported) m_flip = on;
  }

  std::string runtime() const override { return m_executor.int8() ? "onednn-int8" : "onednn"; }

  CacheBytes cache_bytes() const override { return {m_executor.working_bytes(), 0}; }

  void own_weights() override { m_executor.own_weights(); }

  void start_calibration() override { m_executor.calibrate(); }
  void quantize() override { m_executor.quantize(); }
  bool int8() const override { return m_executor.int8(); }

  void write_int8_model(const std::string& path) override {
    if (m_exported)
      throw UsageError(
          "an .onnx export cannot carry INT8 calibration; calibrate the .cdm model file it was "
          "exported from");
    FileParts parts = read_parts(m_origin, FileKind::k_model);
    parts.graph = write_graph(m_executor.calibrated_graph());
    write_file_atomic(path, pack_file(parts));
  }

 private:
  std::string m_origin;  // the file, for errors
  ModelMeta m_meta;
  GraphExecutor m_executor;
  bool m_exported;  // an .onnx file: its graph holds the flip, or not, for good
  bool m_flip;
};

}  // namespace

std::unique_ptr<Predictor> open_graph_predictor(const std::string& origin, ModelMeta meta,
                                                InferenceGraph graph, int threads, bool exported) {
  try {
    return std::make_unique<GraphPredictor>(origin, std::move(meta), std::move(graph), threads,
                                            exported);
  } catch (const ModelError& e) {
    throw ModelError(origin + ": " + e.what());
  }
}

}  // namespace cd
