#include "cd-export/onnx_export.h"

#include <onnx/checker.h>
#include <onnx/onnx_pb.h>
#include <onnx/shape_inference/implementation.h>

#include <ATen/ATen.h>

#include <cstring>

#include "domain/model_file.h"
#include "nn/classifier.h"
#include "nn/graph.h"
#include "runtime/predictor.h"
#include "util/atomic_file.h"
#include "util/errors.h"
#include "util/hash.h"
#include "util/version.h"

namespace cd {

namespace {

constexpr int k_opset = 10;  // Clip and Pad still take attributes, which OpenCV DNN reads

// Attributes ONNX defines as one integer rather than a list.
bool scalar_int(const std::string& name) {
  return name == "group" || name == "axis" || name == "transB" || name == "ceil_mode";
}

void set_shape(onnx::ValueInfoProto* value, const std::string& name,
               std::initializer_list<std::int64_t> dims) {
  value->set_name(name);
  auto* tensor = value->mutable_type()->mutable_tensor_type();
  tensor->set_elem_type(onnx::TensorProto::FLOAT);
  auto* shape = tensor->mutable_shape();
  for (std::int64_t d : dims) {
    auto* dim = shape->add_dim();
    if (d < 0)
      dim->set_dim_param("N");
    else
      dim->set_dim_value(d);
  }
}

void add_initializer(onnx::GraphProto* graph, const std::string& name, const at::Tensor& t) {
  auto* init = graph->add_initializer();
  init->set_name(name);
  for (auto d : t.sizes()) init->add_dims(d);
  at::Tensor c = t.contiguous();
  if (c.scalar_type() == at::kLong) {
    init->set_data_type(onnx::TensorProto::INT64);
    init->set_raw_data(std::string(static_cast<const char*>(c.data_ptr()), c.numel() * 8));
  } else {
    init->set_data_type(onnx::TensorProto::FLOAT);
    c = c.to(at::kFloat);
    init->set_raw_data(std::string(static_cast<const char*>(c.data_ptr()), c.numel() * 4));
  }
}

// catdog's runtime reads an initializer's weights in place from the mapped
// file when they are aligned (runtime/graph.h); unaligned, they are copied
// into fresh memory first, which was most of a cold start's page faults.
// Protobuf writes fields in number order, so an initializer's raw_data
// follows the previous initializer's doc_string (the first's, the last
// node's): spaces there move each to a 64-byte boundary. The padding can
// lengthen a length's varint, so the offsets are measured again until all
// are aligned (two rounds in practice).
void align_initializers(onnx::ModelProto& model) {
  constexpr std::ptrdiff_t k_align = 64;
  onnx::GraphProto* graph = model.mutable_graph();
  const int n = graph->initializer_size();
  if (n == 0 || graph->node_size() == 0) return;
  auto pad_before = [&](int i) {
    return i == 0 ? graph->mutable_node(graph->node_size() - 1)->mutable_doc_string()
                  : graph->mutable_initializer(i - 1)->mutable_doc_string();
  };
  for (int i = 0; i < n; ++i) pad_before(i)->clear();  // present from the start: tag and length
  for (int round = 0; round < 8; ++round) {
    std::string bytes;
    if (!model.SerializeToString(&bytes)) throw IoError("export: cannot serialise the ONNX model");
    std::vector<std::size_t> at = onnx_raw_data_offsets(bytes);
    if (at.size() != static_cast<std::size_t>(n))
      throw ModelError("export: the serialised ONNX model lost an initializer's data");
    std::ptrdiff_t shift = 0;  // what this round's padding so far moves the rest by
    bool aligned = true;
    for (int i = 0; i < n; ++i) {
      std::ptrdiff_t off = static_cast<std::ptrdiff_t>(at[i]) + shift;
      std::ptrdiff_t more = (k_align - off % k_align) % k_align;
      if (more == 0) continue;
      aligned = false;
      std::string* pad = pad_before(i);
      auto had = static_cast<std::ptrdiff_t>(pad->size());
      std::ptrdiff_t want = (had + more) % k_align;
      pad->assign(static_cast<std::size_t>(want), ' ');
      shift += want - had;
    }
    if (aligned) return;
  }
  throw ModelError("export: the ONNX initializers could not be aligned");
}

void add_node(onnx::GraphProto* graph, const GraphNode& n, std::size_t index) {
  auto* node = graph->add_node();
  node->set_op_type(n.op);
  node->set_name(n.op + "_" + std::to_string(index));
  for (const auto& in : n.inputs) node->add_input(in);
  node->add_output(n.output);
  for (const auto& [name, values] : n.ints) {
    auto* a = node->add_attribute();
    a->set_name(name);
    if (scalar_int(name)) {
      a->set_type(onnx::AttributeProto::INT);
      a->set_i(values.at(0));
    } else {
      a->set_type(onnx::AttributeProto::INTS);
      for (auto v : values) a->add_ints(v);
    }
  }
  for (const auto& [name, value] : n.floats) {
    auto* a = node->add_attribute();
    a->set_name(name);
    a->set_type(onnx::AttributeProto::FLOAT);
    a->set_f(value);
  }
}

std::string number(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.17g", v);
  return buf;
}

}  // namespace

ExportSummary export_onnx(const std::string& model_path, const std::string& output_path) {
  std::string file_bytes;
  try {
    file_bytes = read_file(model_path);
  } catch (const IoError& e) {
    throw ModelError(e.what());
  }
  LoadedNetwork loaded = load_network(model_path);
  const ModelMeta& meta = loaded.meta;
  const int size = meta.preprocess.size;
  prepare_for_inference(*loaded.net, c10::Device(c10::kCPU));

  GraphBuilder g;
  std::string logits = loaded.net->describe(g, g.graph.input, size);
  std::string p = g.add("Sigmoid", {logits});
  if (meta.tta_flip) {
    // Mirror the input along its width and average the two views' P(dog),
    // as the LibTorch classifier does. The mirror is a permutation of the
    // width written with the operators every runtime has (OpenCV's Gather
    // takes one index, its Slice no negative step): move the width to the
    // channel axis, a 1x1 convolution with an anti-diagonal 0/1 kernel
    // (exact: each output is one input times 1), and move it back.
    at::Tensor reverse = at::zeros({size, size, 1, 1});
    for (int i = 0; i < size; ++i) reverse[i][size - 1 - i][0][0] = 1.0f;
    std::string by_width = g.add("Transpose", {g.graph.input}, {{"perm", {0, 3, 2, 1}}});
    std::string reversed = g.add(
        "Conv", {by_width, g.weight("flip", reverse)},
        {{"kernel_shape", {1, 1}}, {"strides", {1, 1}}, {"pads", {0, 0, 0, 0}}, {"group", {1}}});
    std::string mirrored = g.add("Transpose", {reversed}, {{"perm", {0, 3, 2, 1}}});
    std::string p2 = g.add("Sigmoid", {loaded.net->describe(g, mirrored, size)});
    std::string half = g.weight("half", at::full({1}, 0.5f));
    p = g.add("Mul", {g.add("Add", {p, p2}), half});
  }
  g.graph.nodes.back().output = "p_dog";
  g.graph.output = "p_dog";

  onnx::ModelProto model;
  model.set_ir_version(onnx::IR_VERSION_2019_3_18);  // the IR version of opset 10
  model.set_producer_name("catdog cd-export");
  model.set_producer_version(version_string("cd-export"));
  model.set_model_version(1);
  auto* opset = model.add_opset_import();
  opset->set_domain("");
  opset->set_version(k_opset);
  auto* graph = model.mutable_graph();
  graph->set_name(meta.architecture);
  set_shape(graph->add_input(), g.graph.input, {-1, 3, size, size});
  set_shape(graph->add_output(), g.graph.output, {-1, 1});
  for (const auto& [name, tensor] : g.graph.weights) add_initializer(graph, name, tensor);
  for (std::size_t i = 0; i < g.graph.nodes.size(); ++i) add_node(graph, g.graph.nodes[i], i);

  ExportSummary summary;
  summary.tta_in_graph = meta.tta_flip;
  auto& md = summary.metadata;
  md["catdog.format"] = "catdog onnx export 1";
  md["catdog.meta"] = meta_to_json(meta).dump();
  md["catdog.architecture"] = meta.architecture;
  md["catdog.classes"] = meta.classes.at(0) + "," + meta.classes.at(1);
  md["catdog.positive_class"] = "dog";
  md["catdog.threshold"] = number(meta.threshold);
  md["catdog.input_size"] = std::to_string(size);
  md["catdog.resize"] = to_string(meta.preprocess.resize);
  md["catdog.normalization"] = to_string(meta.preprocess.norm);
  md["catdog.layout"] = "NCHW float32 RGB";
  md["catdog.tta_flip"] = meta.tta_flip ? "in-graph" : "off";
  md["catdog.model_version"] = hex64(fnv1a64(file_bytes)).substr(0, 12);
  md["catdog.data_fingerprint"] = meta.data_fingerprint;
  md["catdog.git_commit"] = meta.git_commit;
  md["catdog.created"] = meta.created;
  for (const auto& [key, value] : md) {
    auto* prop = model.add_metadata_props();
    prop->set_key(key);
    prop->set_value(value);
  }
  model.set_doc_string("catdog " + meta.architecture + " at " + std::to_string(size) +
                       "px: input float [N,3,S,S] preprocessed as catdog.* says; output p_dog "
                       "[N,1].");
  align_initializers(model);

  try {
    onnx::checker::check_model(model);
    onnx::ShapeInferenceOptions strict{true, 1, false};  // types checked, errors thrown
    onnx::ModelProto inferred = model;
    onnx::shape_inference::InferShapes(inferred, onnx::OpSchemaRegistry::Instance(), strict);
  } catch (const std::exception& e) {
    throw ModelError("export: the ONNX graph for " + meta.architecture +
                     " fails onnx::checker: " + e.what());
  }
  std::string bytes;
  if (!model.SerializeToString(&bytes)) throw IoError("export: cannot serialise the ONNX model");
  write_file_atomic(output_path, bytes);
  summary.bytes = bytes.size();
  summary.nodes = static_cast<std::size_t>(graph->node_size());
  summary.initializers = static_cast<std::size_t>(graph->initializer_size());
  return summary;
}

std::size_t upgrade_model(const std::string& model_path, const std::string& output_path) {
  FileParts parts = read_parts(model_path, FileKind::k_model);
  ModelMeta meta = meta_from_json(parts.meta, model_path);
  std::string bytes = pack_model(meta, parts.payload, model_path);
  write_file_atomic(output_path, bytes);
  return bytes.size();
}

}  // namespace cd
