// cd-export: a model file's network as ONNX, for other runtimes (ONNX
// Runtime, OpenCV DNN, TensorRT, Triton). Opset 10, written with Debian's
// libonnx protobuf classes and checked by onnx::checker before it is saved.
//   input  "input": float [N, 3, S, S], preprocessed as metadata_props say
//   output "p_dog": float [N, 1], the probability of dog
// Batch norm is folded into the convolutions. A model trained with
// test-time flip averaging carries it in the graph (a permutation mirrors
// the input, and both views share the weights), so every runtime gives the same
// answer as cd-predict without knowing about it.
#pragma once

#include <map>
#include <string>

namespace cd {

struct ExportSummary {
  std::size_t bytes = 0, nodes = 0, initializers = 0;
  bool tta_in_graph = false;
  std::map<std::string, std::string> metadata;  // the metadata_props written
};

// Reads the model file, builds and checks the ONNX model, writes it
// atomically. Throws ModelError (bad model file) or IoError.
ExportSummary export_onnx(const std::string& model_path, const std::string& output_path);

// The model file rewritten in the current format (version 3, with the
// inference graph cd-predict and cd-serve run); output may be the input.
// Returns the bytes written. Throws ModelError or IoError.
std::size_t upgrade_model(const std::string& model_path, const std::string& output_path);

}  // namespace cd
