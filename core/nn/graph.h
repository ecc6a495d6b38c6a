// A network as a plain dataflow graph of standard operators (GraphNode,
// runtime/graph.h): cd-export writes it as ONNX, and cd-train into the model
// file for catdog's oneDNN runtime. Node and attribute names are ONNX's (opset 10),
// so an exporter maps them one to one. Described from an inference copy
// (prepare_for_inference), so batch norm is already folded into the convs.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "runtime/graph.h"

namespace torch::nn {
class Conv2dImpl;
class LinearImpl;
class SequentialImpl;
}  // namespace torch::nn

namespace cd {

struct Graph {
  std::string input = "input";  // float [N, 3, S, S], preprocessed as the model file says
  std::string output;           // set by the network: the logits [N, 1]
  std::vector<GraphNode> nodes;
  std::vector<std::pair<std::string, at::Tensor>> weights;  // contiguous float, CPU
};

// The graph with its weights as plain floats, for the runtime.
InferenceGraph to_inference_graph(const Graph& graph);

class GraphBuilder {
 public:
  // Adds a node; returns the name of its output.
  std::string add(const std::string& op, std::vector<std::string> inputs,
                  std::map<std::string, std::vector<std::int64_t>> ints = {},
                  std::map<std::string, float> floats = {});
  // Adds a constant; returns its name (prefix plus a number).
  std::string weight(const std::string& prefix, const at::Tensor& value);

  std::string conv(const torch::nn::Conv2dImpl& conv, const std::string& x);
  // The same with explicit ONNX pads {top, left, bottom, right}, uneven ones included.
  std::string conv(const torch::nn::Conv2dImpl& conv, const std::string& x,
                   const std::vector<std::int64_t>& pads);
  std::string linear(const torch::nn::LinearImpl& linear, const std::string& x);
  // x [N, in] times weight [out, in] transposed, plus bias [out] when defined.
  std::string gemm(const std::string& x, const at::Tensor& weight, const at::Tensor& bias);
  // Global average pooling to [N, C].
  std::string pooled(const std::string& x);
  std::string max_pooled(const std::string& x);  // the maximum over the positions, flattened
  // Each layer of a Sequential in turn (conv, ReLU, LeakyReLU, max-pool,
  // adaptive average pool to 1, flatten, linear; dropout is the identity).
  std::string sequential(torch::nn::SequentialImpl& seq, const std::string& x);
  // A prefix of a Sequential: layers [begin, end).
  std::string layers(torch::nn::SequentialImpl& seq, std::size_t begin, std::size_t end,
                     const std::string& x);

  Graph graph;

 private:
  int m_next = 0;
  // tensor -> its constant's name. The tensor is kept with it: a temporary's
  // address, freed and reused by another tensor, must not find this name.
  std::map<const void*, std::pair<std::string, at::Tensor>> m_named;
};

}  // namespace cd
