#include "runtime/fusion.h"

#include <algorithm>
#include <map>

#include "util/errors.h"

namespace cd {

Activation activation_of(const GraphNode& n) {
  if (n.op == "Relu") return {dnnl::algorithm::eltwise_relu, 0.f, 0.f};
  if (n.op == "LeakyRelu")
    return {dnnl::algorithm::eltwise_relu, n.float_attr("alpha", 0.01f), 0.f};
  if (n.op == "Clip")
    return {dnnl::algorithm::eltwise_clip, n.float_attr("min", -3.4e38f),
            n.float_attr("max", 3.4e38f)};
  if (n.op == "Sigmoid") return {dnnl::algorithm::eltwise_logistic, 0.f, 0.f};
  return {};
}

namespace {

const GraphWeight* conv_weight(const Op& op, const InferenceGraph& g) {
  if (op.node->op != "Conv" || op.node->inputs.size() < 2 || !op.sum.empty()) return nullptr;
  auto it = g.weights.find(op.node->inputs[1]);
  if (it == g.weights.end() || it->second.dims.size() != 4) return nullptr;
  if (op.node->ints_attr("dilations", {1, 1}) != std::vector<std::int64_t>{1, 1}) return nullptr;
  return &it->second;
}

// A 1x1 Conv of stride 1 with no padding, over all its input channels.
bool pointwise(const Op& op, const InferenceGraph& g) {
  const GraphWeight* w = conv_weight(op, g);
  const std::vector<std::int64_t> zeros{0, 0, 0, 0};
  return w && w->dims[2] == 1 && w->dims[3] == 1 && op.node->int_attr("group", 1) == 1 &&
         op.node->ints_attr("strides", {1, 1}) == std::vector<std::int64_t>{1, 1} &&
         op.node->ints_attr("pads", zeros) == zeros && op.pads == zeros;
}

// A 3x3 Conv, one filter per channel, of stride 1 or 2 on both axes.
bool depthwise_3x3(const Op& op, const InferenceGraph& g, std::int64_t channels) {
  const GraphWeight* w = conv_weight(op, g);
  auto strides = op.node->ints_attr("strides", {1, 1});
  return w && w->dims[0] == channels && w->dims[1] == 1 && w->dims[2] == 3 && w->dims[3] == 3 &&
         op.node->int_attr("group", 1) == channels && strides.size() == 2 &&
         strides[0] == strides[1] && (strides[0] == 1 || strides[0] == 2);
}

// A Conv that only mixes channels with a mostly-zero weight (a resize's or
// a mirror's matrix, not a learned one): 1x1, group 1, stride 1, no padding,
// no bias, at most a quarter of its entries nonzero; the weight's name, or
// nullptr. A dense matrix runs faster as the Conv it is.
const std::string* channel_matrix(const GraphNode& n, const InferenceGraph& g) {
  if (n.op != "Conv" || n.inputs.size() != 2) return nullptr;
  auto w = g.weights.find(n.inputs[1]);
  const std::vector<std::int64_t> zeros{0, 0, 0, 0}, ones{1, 1};
  if (w == g.weights.end() || w->second.dims.size() != 4 || w->second.dims[2] != 1 ||
      w->second.dims[3] != 1 || n.int_attr("group", 1) != 1 ||
      n.ints_attr("strides", ones) != ones || n.ints_attr("dilations", ones) != ones ||
      n.ints_attr("pads", zeros) != zeros)
    return nullptr;
  const GraphWeight& m = w->second;
  std::size_t nonzero = 0;
  for (std::size_t i = 0; i < m.count(); ++i) nonzero += m.data()[i] != 0.f;
  if (nonzero * 4 > m.count()) return nullptr;
  return &n.inputs[1];
}

bool transpose_of(const GraphNode* n, const std::vector<std::int64_t>& perm) {
  return n && n->op == "Transpose" && n->ints_attr("perm", {}) == perm;
}

}  // namespace

// Fuses what follows a node when only that follower reads its result.
std::vector<Op> fuse(const InferenceGraph& g) {
  std::map<std::string, int> readers;
  for (const GraphNode& n : g.nodes)
    for (const std::string& in : n.inputs) ++readers[in];
  readers[g.output] += 1;
  std::map<std::string, std::size_t> made_by;
  for (std::size_t i = 0; i < g.nodes.size(); ++i) made_by[g.nodes[i].output] = i;
  auto sole_reader = [&](const std::string& value, std::size_t after) -> const GraphNode* {
    if (readers[value] != 1) return nullptr;
    for (std::size_t j = after + 1; j < g.nodes.size(); ++j)
      for (const std::string& in : g.nodes[j].inputs)
        if (in == value) return &g.nodes[j];
    return nullptr;
  };
  std::vector<char> absorbed(g.nodes.size(), 0);
  std::vector<Op> ops;
  for (std::size_t i = 0; i < g.nodes.size(); ++i) {
    if (absorbed[i]) continue;
    const GraphNode& n = g.nodes[i];
    Op op{&n, n.inputs, n.output, {}, {}, {0, 0, 0, 0}};
    if (n.op == "Conv" && !n.inputs.empty()) {
      // A zero Pad of the spatial axes before it becomes the conv's own padding.
      auto pad_at = made_by.find(n.inputs[0]);
      if (pad_at != made_by.end() && absorbed[pad_at->second] == 2) {
        const GraphNode& pad = g.nodes[pad_at->second];
        auto p = pad.ints_attr("pads", {});
        op.inputs[0] = pad.inputs[0];
        op.pads = {p[2], p[3], p[6], p[7]};
      }
    }
    if (transpose_of(&n, {0, 3, 2, 1})) {
      // N C H W -> N W H C, a matrix along W (the Conv's channels), then back
      // (a mirror), or on to N H W' C, a matrix along H, and back (a resize).
      auto follow = [&](const GraphNode* from) -> const GraphNode* {  // its sole reader
        const GraphNode* next =
            sole_reader(from->output, static_cast<std::size_t>(from - g.nodes.data()));
        return next && next->inputs[0] == from->output ? next : nullptr;
      };
      const GraphNode* conv = follow(&n);
      const std::string* width = conv ? channel_matrix(*conv, g) : nullptr;
      const GraphNode* turn = width ? follow(conv) : nullptr;
      std::vector<AxisMatrix> matrices;
      std::vector<const GraphNode*> chain;
      if (transpose_of(turn, {0, 3, 2, 1})) {
        matrices = {{3, *width}};
        chain = {conv, turn};
      } else if (transpose_of(turn, {0, 2, 1, 3})) {
        const GraphNode* conv2 = follow(turn);
        const std::string* height = conv2 ? channel_matrix(*conv2, g) : nullptr;
        const GraphNode* back = height ? follow(conv2) : nullptr;
        if (transpose_of(back, {0, 3, 1, 2})) {
          matrices = {{3, *width}, {2, *height}};
          chain = {conv, turn, conv2, back};
        }
      }
      if (!matrices.empty()) {
        for (const GraphNode* c : chain) absorbed[static_cast<std::size_t>(c - g.nodes.data())] = 1;
        op.output = chain.back()->output;
        op.axis_matrices = std::move(matrices);
        ops.push_back(std::move(op));
        continue;
      }
    }
    if (n.op == "Pad") {
      auto p = n.ints_attr("pads", {});
      const GraphNode* next = sole_reader(n.output, i);
      bool spatial = p.size() == 8 && p[0] == 0 && p[1] == 0 && p[4] == 0 && p[5] == 0 &&
                     *std::min_element(p.begin(), p.end()) >= 0;
      if (spatial && n.float_attr("value", 0.f) == 0.f && next && next->op == "Conv" &&
          next->inputs[0] == n.output && n.ints_attr("mode", {}).empty()) {
        absorbed[i] = 2;  // read by the conv, as its padding
        continue;
      }
      throw ModelError("the oneDNN runtime runs a Pad only as a zero padding before a Conv");
    }
    if (n.op == "Conv" || n.op == "Gemm") {
      const GraphNode* next = sole_reader(op.output, i);
      if (next && activation_of(*next)) {
        op.act = activation_of(*next);
        op.output = next->output;
        absorbed[static_cast<std::size_t>(next - g.nodes.data())] = 1;
        next = sole_reader(op.output, static_cast<std::size_t>(next - g.nodes.data()));
      }
      if (n.op == "Conv" && next && next->op == "Add" && next->inputs.size() == 2) {
        const std::string& other = next->inputs[0] == op.output ? next->inputs[1] : next->inputs[0];
        // In place: only when nothing reads the residual after the Add.
        std::size_t add_at = static_cast<std::size_t>(next - g.nodes.data());
        bool read_later = other == g.output;
        for (std::size_t j = add_at + 1; j < g.nodes.size(); ++j)
          for (const std::string& in : g.nodes[j].inputs) read_later = read_later || in == other;
        if (other != op.output && !g.weights.count(other) && other != g.input && !read_later) {
          op.sum = other;
          op.output = next->output;
          absorbed[add_at] = 1;
        }
      }
    }
    ops.push_back(std::move(op));
  }
  for (std::size_t i = 0; i + 1 < ops.size(); ++i) {
    const Op& a = ops[i];
    const Op& next = ops[i + 1];
    if (pointwise(a, g) && !next.inputs.empty() && next.inputs[0] == a.output &&
        readers[a.output] == 1 && a.output != g.output &&
        depthwise_3x3(next, g, g.weights.at(a.node->inputs[1]).dims[0]))
      ops[i].depthwise = static_cast<std::ptrdiff_t>(i + 1);
  }
  return ops;
}

// Which Ops form branches: each Op that reads only the input, or values of
// one branch, belongs to that branch (a new one when it reads only the
// input); an Op reading two branches, or what such an Op made, to none. The
// plan runs branches side by side when there are two or more, at least as
// many as threads, of like size, and every Op of none comes after all of
// theirs. -1 per Op where it does not.
std::vector<int> branches(const std::vector<Op>& ops, int team) {
  std::vector<int> group(ops.size(), -1);
  std::map<std::string, int> made_in;  // value -> its Op's group
  int count = 0;
  std::size_t last_in_branch = 0, first_outside = ops.size();
  for (std::size_t i = 0; i < ops.size(); ++i) {
    const Op& op = ops[i];
    std::vector<std::string> read = op.inputs;
    if (!op.sum.empty()) read.push_back(op.sum);
    int g = -2;  // -2: nothing read yet but the input and weights
    for (const std::string& in : read) {
      auto it = made_in.find(in);
      if (it == made_in.end()) continue;
      g = g == -2 || g == it->second ? it->second : -1;
    }
    if (g == -2) g = count++;
    group[i] = g;
    made_in[op.output] = g;
    if (op.depthwise >= 0) made_in[ops[static_cast<std::size_t>(op.depthwise)].output] = g;
    if (g >= 0) last_in_branch = i;
    if (g < 0) first_outside = std::min(first_outside, i);
  }
  // Side by side only as many branches as threads, of like size (by Ops):
  // a small side path beside a backbone, or two branches on eight cores,
  // would leave idle the cores that the Ops in order use.
  std::vector<std::size_t> size(static_cast<std::size_t>(count), 0);
  for (int g : group)
    if (g >= 0) ++size[static_cast<std::size_t>(g)];
  const bool even = count >= 2 && *std::min_element(size.begin(), size.end()) * 2 >=
                                      *std::max_element(size.begin(), size.end());
  if (count < 2 || count < team || !even ||
      (first_outside < ops.size() && first_outside < last_in_branch))
    group.assign(ops.size(), -1);
  return group;
}

}  // namespace cd
