// catdog's inference runtime: an InferenceGraph (runtime/graph.h) run on
// oneDNN, the library LibTorch's CPU convolutions call too, without LibTorch.
// Every architecture's folded graph runs here: convolutions of any group,
// stride and padding, pooling, Gemm, Concat, Transpose, elementwise ops.
//   - Each node is one primitive, built once per batch size (a plan).
//   - An activation that follows a convolution or Gemm, a residual Add and a
//     zero Pad before a convolution are fused into it (post-ops, padding).
//   - Activations stay in the blocked layout oneDNN picks (channels-last in
//     INT8); weights are reordered into the layout their primitive wants once.
//   - Values share a few buffers, reused as soon as their last reader ran;
//     one scratchpad serves every primitive.
//   - A mirror or resize, written as Transposes around dense 1x1 Convs, runs
//     as one step over its matrices' nonzeros.
//   - Branches that read only the input (the two backbones of the accurate
//     setting) run side by side at batch 1 and 2, one thread each, with
//     buffers and scratchpad of their own, then the rest on one thread;
//     only where there are at least as many branches as threads, of like
//     size (by Ops), so that no core is left idle.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "runtime/graph.h"

namespace cd {

inline constexpr const char* k_int8_input_lo = "catdog_int8_input_lo";
inline constexpr const char* k_int8_input_hi = "catdog_int8_input_hi";

class GraphExecutor {
 public:
  // threads: the compute threads each run uses (OpenMP); 0: every core.
  // Throws ModelError for an operator or attribute this runtime lacks.
  GraphExecutor(InferenceGraph graph, int threads);
  ~GraphExecutor();
  GraphExecutor(const GraphExecutor&) = delete;
  GraphExecutor& operator=(const GraphExecutor&) = delete;

  // input: n images [n, 3, side, side], plain floats. Returns the output,
  // n rows of `width()` floats. One run at a time (a mutex); a plan is built
  // on the first run of each batch size.
  std::vector<float> run(const float* input, std::int64_t n, std::int64_t side);

  // Copies the weights the graph reads in place (from a mapped model file)
  // into memory of its own and lets the file go, so that a file changed in
  // place later cannot change the weights of a plan built afterwards, or
  // fault (SIGBUS) on a truncated one. A long-running server calls it once
  // warmed up; a one-shot tool never pays for it.
  void own_weights();

  // INT8, with oneDNN's u8/s8 convolutions (s32 accumulation):
  //   1. calibrate(): from now on, each run also records the range of
  //      every Conv's input (run training images through it);
  //   2. quantize(): from now on, each dense or depthwise Conv whose input
  //      was seen runs on 8-bit data: its input quantised per tensor to
  //      that range (u8 where it was never negative, else s8), its weights
  //      per output channel (s8), its bias, activation and residual Add
  //      applied to the f32 result. A Conv whose result only one such Conv
  //      reads writes it already quantised, channels-last, so no reorder
  //      runs between them. Everything else stays f32. Throws UsageError
  //      before calibration.
  // Each rebuilds the plans; the 1x1 + depthwise pairs then run apart (the
  // first writes its result as 8 bits the second reads, which pays more).
  void calibrate();
  void quantize();
  // The graph with each calibrated Conv's input range among its float
  // attributes (k_int8_input_lo and _hi): an executor given such a graph
  // runs INT8 from its first run. Throws UsageError before calibration.
  InferenceGraph calibrated_graph() const;
  bool int8() const;  // quantized, or built from a calibrated graph

  std::size_t plans() const;  // batch sizes planned so far
  // Branches the plan for batch n at `side` runs side by side (0: it runs its
  // steps in order, or has not been planned yet).
  int branches(std::int64_t n, std::int64_t side) const;
  // Bytes held for activations and scratch, the largest plan's.
  std::size_t working_bytes() const;

 private:
  class Impl;
  std::unique_ptr<Impl> m_impl;
};

}  // namespace cd
