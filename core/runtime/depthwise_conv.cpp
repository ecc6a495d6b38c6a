#include "runtime/depthwise_conv.h"

#include <opencv2/core/utility.hpp>
#include <opencv2/dnn.hpp>
#include <opencv2/dnn/all_layers.hpp>
#include <opencv2/dnn/layer.details.hpp>

#include <algorithm>
#include <limits>
#include <mutex>
#include <vector>

namespace cd {

namespace {

struct Geometry {
  int kernel = 0, stride = 1;
  int pad_top = 0, pad_left = 0, pad_bottom = 0, pad_right = 0;
};

// x86-64-v3 (AVX2, FMA) where the CPU has it, chosen at load time by an ifunc
// resolver. Not in the sanitizer builds: ThreadSanitizer crashes (SIGSEGV)
// in a resolver that runs before its runtime is up.
#if defined(__x86_64__) && !defined(__clang__) && !defined(__SANITIZE_THREAD__) && \
    !defined(__SANITIZE_ADDRESS__)
#define CD_MULTIVERSION __attribute__((target_clones("arch=x86-64-v3", "default")))
#else
#define CD_MULTIVERSION
#endif

// One output row, stride 1, a K x K kernel known at compile time: each output
// accumulates all K*K taps in a register, and the compiler vectorises across x.
template <int K>
inline __attribute__((always_inline)) void row_stride1(const float* src, int padded_w,
                                                       const float* kernel, float bias, float* row,
                                                       int out_width) {
  for (int x = 0; x < out_width; ++x) {
    float acc = bias;
    for (int ky = 0; ky < K; ++ky)
      for (int kx = 0; kx < K; ++kx) acc += kernel[ky * K + kx] * src[ky * padded_w + x + kx];
    row[x] = acc;
  }
}

// One channel: the input is first copied into a zero-bordered scratch plane,
// so no tap needs a bounds check.
CD_MULTIVERSION
void plane(const float* in, int height, int width, const float* kernel, const Geometry& g,
           float bias, float lo, float hi, float* out, int out_height, int out_width,
           std::vector<float>& scratch) {
  const int padded_w = width + g.pad_left + g.pad_right;
  const int padded_h = height + g.pad_top + g.pad_bottom;
  scratch.assign(static_cast<std::size_t>(padded_w) * padded_h, 0.0f);
  for (int y = 0; y < height; ++y)
    std::copy(in + static_cast<std::size_t>(y) * width,
              in + static_cast<std::size_t>(y + 1) * width,
              scratch.data() + static_cast<std::size_t>(y + g.pad_top) * padded_w + g.pad_left);
  const int k = g.kernel, stride = g.stride;
  for (int y = 0; y < out_height; ++y) {
    float* row = out + static_cast<std::size_t>(y) * out_width;
    const float* src = scratch.data() + static_cast<std::size_t>(y * stride) * padded_w;
    if (stride == 1 && k == 5) {
      row_stride1<5>(src, padded_w, kernel, bias, row, out_width);
    } else if (stride == 1 && k == 3) {
      row_stride1<3>(src, padded_w, kernel, bias, row, out_width);
    } else {
      for (int x = 0; x < out_width; ++x) row[x] = bias;
      for (int ky = 0; ky < k; ++ky)
        for (int kx = 0; kx < k; ++kx) {
          const float w = kernel[ky * k + kx];
          const float* tap = src + static_cast<std::size_t>(ky) * padded_w + kx;
          for (int x = 0; x < out_width; ++x) row[x] += w * tap[x * stride];
        }
    }
    for (int x = 0; x < out_width; ++x) row[x] = std::min(hi, std::max(lo, row[x]));
  }
}

class DepthwiseConvolution : public cv::dnn::Layer {
 public:
  DepthwiseConvolution(const cv::dnn::LayerParams& params, Geometry g)
      : Layer(params), m_geometry(g) {}

  bool getMemoryShapes(const std::vector<cv::dnn::MatShape>& inputs, const int,
                       std::vector<cv::dnn::MatShape>& outputs,
                       std::vector<cv::dnn::MatShape>&) const override {
    const cv::dnn::MatShape& in = inputs[0];  // N, C, H, W
    outputs.assign(1, {in[0], in[1], out_side(in[2], m_geometry.pad_top, m_geometry.pad_bottom),
                       out_side(in[3], m_geometry.pad_left, m_geometry.pad_right)});
    return false;
  }

  bool setActivation(const cv::Ptr<cv::dnn::ActivationLayer>& layer) override {
    if (auto relu6 = layer.dynamicCast<cv::dnn::ReLU6Layer>()) {
      m_lo = relu6->minValue, m_hi = relu6->maxValue;
      return true;
    }
    return false;
  }

  void forward(cv::InputArrayOfArrays inputs_arr, cv::OutputArrayOfArrays outputs_arr,
               cv::OutputArrayOfArrays) override {
    std::vector<cv::Mat> inputs, outputs;
    inputs_arr.getMatVector(inputs);
    outputs_arr.getMatVector(outputs);
    const cv::Mat& in = inputs[0];
    cv::Mat& out = outputs[0];
    CV_Assert(in.type() == CV_32F && in.dims == 4 && in.isContinuous() && out.isContinuous());
    const int channels = in.size[1], height = in.size[2], width = in.size[3];
    const int out_height = out.size[2], out_width = out.size[3];
    const cv::Mat& weights = blobs[0];
    CV_Assert(static_cast<int>(weights.total()) ==
              channels * m_geometry.kernel * m_geometry.kernel);
    const float* bias = blobs.size() > 1 ? blobs[1].ptr<float>() : nullptr;
    const std::size_t in_plane = static_cast<std::size_t>(height) * width;
    const std::size_t out_plane = static_cast<std::size_t>(out_height) * out_width;
    const int planes = in.size[0] * channels;
    cv::parallel_for_(cv::Range(0, planes), [&](const cv::Range& range) {
      thread_local std::vector<float> scratch;
      for (int p = range.start; p < range.end; ++p) {
        int c = p % channels;
        plane(in.ptr<float>() + p * in_plane, height, width,
              weights.ptr<float>() + c * m_geometry.kernel * m_geometry.kernel, m_geometry,
              bias ? bias[c] : 0.0f, m_lo, m_hi, out.ptr<float>() + p * out_plane, out_height,
              out_width, scratch);
      }
    });
  }

 private:
  int out_side(int in, int pad_begin, int pad_end) const {
    return (in + pad_begin + pad_end - m_geometry.kernel) / m_geometry.stride + 1;
  }

  Geometry m_geometry;
  float m_lo = -std::numeric_limits<float>::infinity();
  float m_hi = std::numeric_limits<float>::infinity();
};

int param(const cv::dnn::LayerParams& params, const char* key, int index, int fallback) {
  if (!params.has(key)) return fallback;
  const cv::dnn::DictValue& v = params.get(key);
  if (v.size() == 1) return v.get<int>(0);
  return index < v.size() ? v.get<int>(index) : fallback;
}

// Ours for a square depthwise kernel of 5 or more without dilation; OpenCV's
// own layer for anything else.
cv::Ptr<cv::dnn::Layer> create_convolution(cv::dnn::LayerParams& params) {
  Geometry g;
  int kh = param(params, "kernel_size", 0, 0), kw = param(params, "kernel_size", 1, 0);
  int group = params.get<int>("group", 1), outputs = params.get<int>("num_output", 0);
  bool depthwise = group > 1 && group == outputs && !params.blobs.empty() &&
                   params.blobs[0].dims == 4 && params.blobs[0].size[1] == 1 &&
                   params.blobs[0].type() == CV_32F;
  bool plain = param(params, "dilation", 0, 1) == 1 && param(params, "dilation", 1, 1) == 1 &&
               param(params, "stride", 0, 1) == param(params, "stride", 1, 1);
  if (!depthwise || !plain || kh != kw || kh < 3 || params.has("pad_mode"))
    return cv::dnn::ConvolutionLayer::create(params);
  g.kernel = kh;
  g.stride = param(params, "stride", 0, 1);
  if (params.has("pad") && params.get("pad").size() == 4) {  // ONNX order: begins, then ends
    g.pad_top = param(params, "pad", 0, 0), g.pad_left = param(params, "pad", 1, 0);
    g.pad_bottom = param(params, "pad", 2, 0), g.pad_right = param(params, "pad", 3, 0);
  } else {
    g.pad_top = g.pad_bottom = param(params, "pad", 0, 0);
    g.pad_left = g.pad_right = param(params, "pad", 1, 0);
  }
  return cv::Ptr<cv::dnn::Layer>(new DepthwiseConvolution(params, g));
}

}  // namespace

cv::dnn::Net read_onnx_with_fast_depthwise(const char* data, std::size_t size) {
  // The importer makes every layer while it reads, so the registration is
  // needed only for that long.
  static std::mutex reading;
  std::lock_guard<std::mutex> lock(reading);
  cv::dnn::LayerFactory::registerLayer("Convolution", create_convolution);
  struct Restore {
    ~Restore() { cv::dnn::LayerFactory::unregisterLayer("Convolution"); }
  } restore;
  return cv::dnn::readNetFromONNX(data, size);
}

}  // namespace cd
