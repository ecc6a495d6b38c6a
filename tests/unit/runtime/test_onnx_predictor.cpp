// The ONNX reader (onnx_predictor.cpp) on files built here, field by field, in
// protobuf's wire format: what it takes from a ModelProto, and how it refuses
// a damaged one (a ModelError naming the problem, never a crash).
#include <catch2/catch.hpp>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "runtime/predictor.h"
#include "util/errors.h"

namespace {

// Protobuf's wire format, as much as a ModelProto needs.
std::string pb_varint(std::uint64_t v) {
  std::string out;
  do {
    unsigned char b = v & 0x7F;
    v >>= 7;
    out += static_cast<char>(v ? b | 0x80 : b);
  } while (v);
  return out;
}
std::string pb_field(int number, const std::string& payload) {  // length-delimited
  return pb_varint(static_cast<std::uint64_t>(number) << 3 | 2) + pb_varint(payload.size()) +
         payload;
}
std::string pb_number(int field_number, std::uint64_t v) {  // varint
  return pb_varint(static_cast<std::uint64_t>(field_number) << 3) + pb_varint(v);
}
std::string pb_fixed32(int field_number, float f) {
  std::uint32_t bits;
  std::memcpy(&bits, &f, 4);
  std::string out = pb_varint(static_cast<std::uint64_t>(field_number) << 3 | 5);
  for (int i = 0; i < 4; ++i) out += static_cast<char>((bits >> (8 * i)) & 0xFF);
  return out;
}
std::string pb_floats(const std::vector<float>& v) {
  return std::string(reinterpret_cast<const char*>(v.data()), v.size() * 4);
}

// TensorProto: dims (1), data_type (2), name (8), raw_data (9).
std::string tensor_proto(const std::string& name, const std::vector<std::int64_t>& dims,
                         const std::vector<float>& values, int data_type = 1) {
  std::string t;
  for (auto d : dims) t += pb_number(1, static_cast<std::uint64_t>(d));
  return t + pb_number(2, static_cast<std::uint64_t>(data_type)) + pb_field(8, name) +
         pb_field(9, pb_floats(values));
}
// NodeProto: input (1), output (2), op_type (4), attribute (5).
std::string node_proto(const std::string& op, const std::vector<std::string>& inputs,
                       const std::string& output, const std::string& attributes = "") {
  std::string n;
  for (const auto& in : inputs) n += pb_field(1, in);
  return n + pb_field(2, output) + pb_field(4, op) + attributes;
}
std::string value_info_proto(const std::string& name) { return pb_field(1, name); }

// A 1x1 Conv (packed `strides`, one `group` int), then a Clip with float bounds.
std::string graph_proto(const std::string& extra_initializer = "") {
  std::string conv_attributes =
      pb_field(5, pb_field(1, "strides") + pb_field(8, pb_varint(1) + pb_varint(1))) +
      pb_field(5, pb_field(1, "group") + pb_number(3, 1));
  std::string clip_attributes = pb_field(5, pb_field(1, "min") + pb_fixed32(2, 0.0f)) +
                                pb_field(5, pb_field(1, "max") + pb_fixed32(2, 6.0f));
  return pb_field(1, node_proto("Conv", {"x", "w", "b"}, "y", conv_attributes)) +
         pb_field(1, node_proto("Clip", std::vector<std::string>{"y"}, "z", clip_attributes)) +
         pb_field(5, tensor_proto("w", {2, 3, 1, 1}, {1, 2, 3, 4, 5, 6})) +
         pb_field(5, tensor_proto("b", {2}, {0.5f, -0.5f})) + extra_initializer +
         pb_field(11, value_info_proto("x")) + pb_field(12, value_info_proto("z"));
}
std::string model_proto(const std::string& graph_bytes, const std::string& meta_json = "") {
  std::string m = pb_number(1, 7) + pb_field(7, graph_bytes);  // ir_version, graph
  if (!meta_json.empty()) m += pb_field(14, pb_field(1, "catdog.meta") + pb_field(2, meta_json));
  return m;
}

}  // namespace

TEST_CASE("onnx: the reader takes nodes, attributes, initializers, input and output", "[onnx]") {
  cd::InferenceGraph g = cd::read_onnx_graph(model_proto(graph_proto()), "test.onnx", nullptr);
  CHECK(g.input == "x");
  CHECK(g.output == "z");
  REQUIRE(g.nodes.size() == 2);
  const cd::GraphNode& conv = g.nodes[0];
  CHECK(conv.op == "Conv");
  CHECK(conv.inputs == std::vector<std::string>{"x", "w", "b"});
  CHECK(conv.output == "y");
  CHECK(conv.ints_attr("strides", {}) == std::vector<std::int64_t>{1, 1});  // packed
  CHECK(conv.int_attr("group", 0) == 1);                                    // one int
  CHECK(g.nodes[1].float_attr("min", -1) == 0.0f);
  CHECK(g.nodes[1].float_attr("max", -1) == 6.0f);
  const cd::GraphWeight& w = g.weights.at("w");
  CHECK(w.dims == std::vector<std::int64_t>{2, 3, 1, 1});
  REQUIRE(w.count() == 6);
  CHECK(w.data()[5] == 6.0f);
  CHECK(g.weights.at("b").data()[1] == -0.5f);
}

TEST_CASE("onnx: raw_data offsets point at each initializer's bytes in the file", "[onnx]") {
  std::string bytes = model_proto(graph_proto());
  auto offsets = cd::onnx_raw_data_offsets(bytes);
  REQUIRE(offsets.size() == 2);
  float first;
  std::memcpy(&first, bytes.data() + offsets[0], 4);
  CHECK(first == 1.0f);
  std::memcpy(&first, bytes.data() + offsets[1], 4);
  CHECK(first == 0.5f);
}

TEST_CASE("onnx: a damaged graph is a ModelError that names the problem", "[onnx]") {
  const float nan = std::numeric_limits<float>::quiet_NaN();
  struct Case {
    std::string bytes, message;
  } cases[] = {
      {pb_number(1, 7), "holds no graph"},
      {model_proto(pb_field(1, node_proto("Relu", std::vector<std::string>{"nowhere"}, "y")) +
                   pb_field(11, value_info_proto("x")) + pb_field(12, value_info_proto("y"))),
       "reads 'nowhere' before it is made"},
      {model_proto(graph_proto(pb_field(5, tensor_proto("bad", {2}, {1.0f, nan})))),
       "holds NaN or Inf"},
      {model_proto(graph_proto(pb_field(5, tensor_proto("short", {4}, {1.0f, 2.0f})))),
       "holds 2 values for its shape"},
      {model_proto(graph_proto(pb_field(5, tensor_proto("half", {1}, {1.0f}, /*data_type=*/10)))),
       "is not float"},
      {model_proto(graph_proto(pb_field(5, tensor_proto("zero", {0}, {})))), "has a bad shape"},
      {model_proto(pb_field(1, node_proto("Relu", std::vector<std::string>{"x"}, "y")) +
                   pb_field(11, value_info_proto("x")) + pb_field(12, value_info_proto("never"))),
       "never computes its output"},
  };
  for (const Case& c : cases) {
    INFO(c.message);
    CHECK_THROWS_AS(cd::read_onnx_graph(c.bytes, "m.onnx", nullptr), cd::ModelError);
    CHECK_THROWS_WITH(cd::read_onnx_graph(c.bytes, "m.onnx", nullptr),
                      Catch::StartsWith("m.onnx: ") && Catch::Contains(c.message));
  }
}

TEST_CASE("onnx: a file without catdog's metadata is refused with what to do", "[onnx]") {
  CHECK_THROWS_WITH(cd::read_onnx_meta(model_proto(graph_proto()), "other.onnx"),
                    Catch::Contains("not an ONNX file from cd-export") &&
                        Catch::Contains("export it with cd-export"));
  CHECK_THROWS_WITH(cd::read_onnx_meta(model_proto(graph_proto(), "{not json"), "m.onnx"),
                    Catch::Contains("catdog.meta is not valid JSON"));
}

TEST_CASE("onnx: every truncation of a valid file is refused or read, never a crash", "[onnx]") {
  std::string bytes = model_proto(graph_proto());
  int refused = 0;
  for (std::size_t cut = 0; cut < bytes.size(); ++cut) {
    try {
      cd::read_onnx_graph(std::string_view(bytes.data(), cut), "cut.onnx", nullptr);
    } catch (const cd::ModelError&) {
      ++refused;
    }
  }
  CHECK(refused > 0);
}
