// EfficientNet-Lite's folded inference run straight on oneDNN, the library
// LibTorch's CPU convolutions already call. Through ATen each of Lite2's ~130
// ops is a separate pass: the convolution reorders its weights on every call,
// and ReLU6 and the residual add each read and write the whole activation
// again. Here every convolution is one primitive, built once per input shape,
// with its weights reordered once, ReLU6 and the residual add fused into it
// as post-ops, and activations in the blocked layout oneDNN picks, in a few
// buffers reused from block to block.
//
// Compiled where oneDNN 2.x's headers are found and LibTorch itself runs on
// that same library (Debian's libtorch links libdnnl2): CATDOG_HAVE_ONEDNN.
// Without it, lite_engine_available() is false and EfficientNet-Lite stays on
// ATen.
#pragma once

#include <ATen/core/Tensor.h>

#include <memory>
#include <vector>

namespace cd::onednn {

// A folded convolution: weight [out, in / groups, k, k] (any strides), bias
// [out]. Padding is TensorFlow "SAME" for the input side it meets (uneven
// after, at stride 2).
struct LiteConv {
  at::Tensor weight, bias;
  int stride = 1;
  int groups = 1;
  bool clip6 = false;  // ReLU6 after it
};

struct LiteBlock {
  bool has_expand = false;
  LiteConv expand, depthwise, project;
  bool residual = false;  // the block's input added to project's output
};

struct LiteNet {
  LiteConv stem;
  std::vector<LiteBlock> blocks;
  LiteConv head;
  std::vector<std::size_t> taps;  // blocks whose outputs are mean-pooled too
  bool peak = false;              // the head features' maximum over positions too
};

bool lite_engine_available();

class LiteEngine {
 public:
  explicit LiteEngine(LiteNet net);
  ~LiteEngine();
  LiteEngine(const LiteEngine&) = delete;
  LiteEngine& operator=(const LiteEngine&) = delete;

  // x: float [N, 3, H, W] on the CPU, contiguous or channels-last. Returns
  // [N, C] tensors: the mean of each tap in order, the head features' mean,
  // then their maximum when peak. An empty vector when busy (another thread
  // runs it): the caller runs ATen instead.
  std::vector<at::Tensor> run(const at::Tensor& x);

 private:
  class Impl;
  std::unique_ptr<Impl> m_impl;
};

}  // namespace cd::onednn
