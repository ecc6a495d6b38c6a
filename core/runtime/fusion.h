// The fusion pass of catdog's oneDNN runtime (runtime/executor.h): which of an
// inference graph's nodes one primitive runs. An activation after a Conv or
// Gemm becomes its eltwise post-op, a residual Add after a Conv its sum
// post-op, and a zero Pad before a Conv the Conv's own padding, each only
// where the fused node's result has no other reader. A 1x1 Conv followed by a
// depthwise 3x3 Conv is marked as a pair the executor may run as one. The
// Transposes and 1x1 Convs that apply a matrix along the width (a mirror), or
// along the width and then the height (a resize), become one Op.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include <dnnl.hpp>

#include "runtime/graph.h"

namespace cd {

// A fused activation: none, or one eltwise post-op.
struct Activation {
  dnnl::algorithm alg = dnnl::algorithm::undef;
  float alpha = 0, beta = 0;
  explicit operator bool() const { return alg != dnnl::algorithm::undef; }
};

// The node's activation as an eltwise post-op, or none for another operator.
Activation activation_of(const GraphNode& n);

// A matrix applied along one spatial axis of an NCHW value: out[.., i, ..] =
// sum over k of weight[i, k, 0, 0] * in[.., k, ..]. The exported graphs write
// an image's mirror and resize this way, as Transposes around 1x1 Convs.
struct AxisMatrix {
  int axis;            // 2: height, 3: width
  std::string weight;  // [out, in, 1, 1]
};

// One node after fusion: the graph's node, what was folded into it, and the
// name its result goes by (the last fused node's output).
struct Op {
  const GraphNode* node;
  std::vector<std::string> inputs;
  std::string output;
  Activation act;
  std::string sum;                             // Conv: the residual added in place (an Add fused)
  std::vector<std::int64_t> pads{0, 0, 0, 0};  // Conv: a Pad fused, {top, left, bottom, right}
  // A 1x1 Conv: the index of the next Op when that is a depthwise 3x3 Conv
  // reading this one's result alone (the executor may run it as this
  // convolution's depthwise post-op), or -1.
  std::ptrdiff_t depthwise = -1;
  // A Transpose that moves the width to the channel axis, the 1x1 Convs
  // mixing along it (and along the height after a second Transpose), and the
  // Transpose back, as one step: the matrices in order, or none.
  std::vector<AxisMatrix> axis_matrices;
};

// The graph's nodes in order, with what follows each fused into it. The Ops
// point into `g`, which must outlive them. Throws ModelError for a Pad that
// is not a zero padding before a Conv.
std::vector<Op> fuse(const InferenceGraph& g);

// Per Op, the branch it runs in side by side with the others (runtime/
// executor.h) on `team` threads, or -1 for every Op where the graph's Ops
// should run in order.
std::vector<int> branches(const std::vector<Op>& ops, int team);

}  // namespace cd
