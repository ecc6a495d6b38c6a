// The inference runtimes behind one interface: a batch of preprocessed images,
// as plain floats (what preprocess_into writes), in; P(dog) out. A model file
// (format 3, with its inference graph) and an exported .onnx file both run on
// catdog's oneDNN runtime (runtime/executor.h) in this process. LibTorch
// lives in a module (libcatdog_torch.so beside the binary), loaded only for
// --device cuda or an older model file without a graph, so a tool predicting
// on the CPU never maps LibTorch at all.
#pragma once

#include <cstddef>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "domain/labels.h"
#include "domain/model_file.h"
#include "runtime/graph.h"

namespace cd {

class Predictor {
 public:
  virtual ~Predictor() = default;
  virtual const ModelMeta& meta() const = 0;
  // n images of 3 x S x S floats each (S = meta().preprocess.size), one after
  // another; returns n probabilities of dog. Throws ModelError on a
  // non-finite answer.
  virtual std::vector<float> predict(const float* images, std::size_t n) = 0;
  // Test-time flip forced on or off; a runtime that cannot throws UsageError.
  virtual void set_tta_flip(bool on) = 0;
  virtual std::string runtime() const = 0;  // "onednn", "onednn-int8" or "libtorch"
  // Memory the runtime keeps mapped for reuse (LibTorch's tensor cache).
  struct CacheBytes {
    std::size_t mapped = 0, idle = 0;
  };
  virtual CacheBytes cache_bytes() const { return {}; }
  // Lets go of the model file: what the runtime still reads from it in place
  // is copied into memory of its own (GraphExecutor::own_weights).
  virtual void own_weights() {}
  // INT8 (the oneDNN runtime's GraphExecutor::calibrate and quantize): from
  // start_calibration() on, predict() also records the range of every
  // convolution's input; quantize() then runs the convolutions on 8-bit
  // data. Others throw UsageError.
  virtual void start_calibration();
  virtual void quantize();
  // A copy of the model file whose graph carries the calibration, written
  // atomically to `path`: opened again, it runs INT8 from the start.
  virtual void write_int8_model(const std::string& path);
  virtual bool int8() const { return false; }
};

// --tta: keep the model file's setting, or force mirror averaging on or off.
enum class TtaChoice { k_model, k_on, k_off };
TtaChoice parse_tta(const std::string& name);  // UsageError
void apply_tta_choice(Predictor& model, TtaChoice choice);

struct RuntimeOptions {
  std::string device = "cpu";  // cpu|cuda|auto; cuda alone loads LibTorch
  int threads = 0;             // compute threads; 0: every core
  // LibTorch: large tensor buffers stay mapped after use for the next
  // request (nn/buffer_cache.h), up to this many idle bytes; 0: off.
  std::size_t tensor_cache_bytes = 0;
  // A model file that carries INT8 calibration runs its convolutions in f32
  // all the same (to measure what INT8 changes).
  bool f32 = false;
};

bool is_onnx_path(const std::string& path);

// By the file and the device: the oneDNN runtime, or the LibTorch module.
// Throws ModelError (a bad file, or the module missing) or UsageError.
std::unique_ptr<Predictor> open_predictor(const std::string& path, const RuntimeOptions& options);
std::unique_ptr<Predictor> open_onnx_predictor(const std::string& path, int threads);
// Whether a model file's graph carries INT8 calibration (cd-train's
// model.int8_images or cd-eval --int8-model wrote it): the oneDNN runtime then runs it in INT8.
// False for an .onnx file or a model file without a graph. Throws ModelError.
bool carries_int8_calibration(const std::string& path);
// A graph on the oneDNN runtime. exported: an .onnx file's graph, which
// holds its test-time flip itself; otherwise the runtime flips as the
// metadata (or set_tta_flip) says. Throws ModelError.
// origin names the file in errors, at load and on every run.
std::unique_ptr<Predictor> open_graph_predictor(const std::string& origin, ModelMeta meta,
                                                InferenceGraph graph, int threads, bool exported);

// An .onnx file's graph (cd-export's operators), read without any ONNX
// library. Throws ModelError. With `backing` (what owns `bytes`), aligned
// weights are borrowed from `bytes` instead of copied.
InferenceGraph read_onnx_graph(std::string_view bytes, const std::string& origin,
                               std::shared_ptr<const void> backing = nullptr);

// Where each initializer's raw_data begins in an ONNX file's bytes, in the
// file's order (cd-export pads the file so that each is 64-byte aligned, and
// so read in place). Empty when the bytes hold no graph.
std::vector<std::size_t> onnx_raw_data_offsets(std::string_view bytes);

// The catdog metadata an exported ONNX file carries (metadata_props
// "catdog.meta"), read from the protobuf bytes. Throws ModelError.
ModelMeta read_onnx_meta(std::string_view bytes, const std::string& origin);

// Batched prediction over image files, shared by cd-predict and cd-eval:
// files are decoded and preprocessed on worker threads, run through the
// model in batches, and reported in input order, bad inputs included.
struct Prediction {
  std::string path;
  std::string error;  // empty when the image was classified
  double p_dog = 0;
  double ms = 0;  // decode + preprocess + this image's share of the forward pass
  Decision decision(double threshold) const { return decide(p_dog, threshold); }
};

// Fills p_dog or error for every entry without one; calls `done` in order as
// each batch completes.
void predict_all(Predictor& model, std::vector<Prediction>& items, int batch_size, int threads,
                 const std::function<void(const Prediction&)>& done);

// INT8 calibration, shared by cd-train (the pipeline's model file) and
// cd-eval: `count` of `paths`, every k-th so the whole list is seen, run
// through `model` with calibration on, then quantize(). Unreadable images are
// skipped with a warning. Returns how many were read; throws DataError when
// none could be (`origin` names the list in messages), UsageError for count 0.
std::size_t calibrate_int8(Predictor& model, const std::vector<std::string>& paths,
                           std::size_t count, int batch_size, int threads,
                           const std::string& origin);

}  // namespace cd
