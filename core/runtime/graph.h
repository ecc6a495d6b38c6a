// A network's folded inference graph without LibTorch: nodes of standard
// operators (ONNX's names and attributes, opset 10) and plain float weights.
// cd-train writes it into the model file and cd-export into ONNX; the oneDNN
// executor (runtime/executor.h) runs it. Its bytes ("catdog-graph 1"): a
// magic line, a JSON header naming nodes and weights, then each weight's
// little-endian floats, 64-byte aligned.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace cd {

struct GraphNode {
  std::string op;  // Conv, Relu, LeakyRelu, Clip, Pad, MaxPool, GlobalAveragePool, ...
  std::vector<std::string> inputs;
  std::string output;
  std::map<std::string, std::vector<std::int64_t>> ints;  // one value or a list
  std::map<std::string, float> floats;

  std::int64_t int_attr(const std::string& name, std::int64_t fallback) const;
  std::vector<std::int64_t> ints_attr(const std::string& name,
                                      std::vector<std::int64_t> fallback) const;
  float float_attr(const std::string& name, float fallback) const;
};

struct GraphWeight {
  std::vector<std::int64_t> dims;
  std::vector<float> values;        // the values, held here
  const float* borrowed = nullptr;  // or read in place, from bytes the graph's `backing` keeps
  std::size_t borrowed_count = 0;

  const float* data() const { return borrowed ? borrowed : values.data(); }
  std::size_t count() const { return borrowed ? borrowed_count : values.size(); }
};

struct InferenceGraph {
  std::string input = "input";   // float [N, 3, S, S], preprocessed as the model file says
  std::string output;            // the graph's last value: P(dog) [N, 1]
  std::vector<GraphNode> nodes;  // in an order that computes every input before its use
  std::map<std::string, GraphWeight> weights;
  // What borrowed weights point into (a mapped model file), kept alive with the graph.
  std::shared_ptr<const void> backing;
};

std::string write_graph(const InferenceGraph& graph);
// Checks the layout, the names every node refers to and that every weight is
// finite. Throws ModelError naming `origin`. With `backing` (what owns
// `bytes`), aligned weights are borrowed from `bytes` instead of copied.
InferenceGraph read_graph(std::string_view bytes, const std::string& origin,
                          std::shared_ptr<const void> backing = nullptr);

// Whether a weight at `at` may be read in place: floats need 4-byte alignment.
inline bool can_borrow(const void* at, const std::shared_ptr<const void>& backing) {
  return backing && reinterpret_cast<std::uintptr_t>(at) % alignof(float) == 0;
}

}  // namespace cd
