#include "cd-serve/v2.h"

#include <catch2/catch.hpp>
#include <cstring>
#include <nlohmann/json.hpp>

namespace v2 = cd::serve::v2;

namespace {

const v2::Limits k_limits{64};

std::string le32(std::uint32_t n) {
  std::string s(4, '\0');
  std::memcpy(s.data(), &n, 4);
  return s;
}

std::string floats_bytes(const std::vector<float>& v) {
  return std::string(reinterpret_cast<const char*>(v.data()), v.size() * 4);
}

// A request whose JSON is `head`, followed by `binary`, as the extension frames it.
v2::InferRequest parse_binary(const std::string& head, const std::string& binary) {
  return v2::parse_infer(head + binary, head.size(), k_limits);
}

}  // namespace

TEST_CASE("a JSON FP32 tensor is read in row-major order from nested or flat data", "[v2]") {
  auto nested =
      v2::parse_infer(R"({"id":"r1","inputs":[{"name":"input","datatype":"FP32","shape":[1,3,1,2],)"
                      R"("data":[[[[1,2]],[[3,4.5]],[[-5,6e-1]]]]}],"outputs":[{"name":"p_dog"}]})",
                      std::nullopt, k_limits);
  REQUIRE(nested.inputs.size() == 1);
  CHECK(nested.id == "r1");
  CHECK(nested.inputs[0].datatype == v2::DataType::k_fp32);
  CHECK(nested.inputs[0].shape == std::vector<std::int64_t>{1, 3, 1, 2});
  CHECK(nested.inputs[0].floats == std::vector<float>{1, 2, 3, 4.5f, -5, 0.6f});
  REQUIRE(nested.outputs.size() == 1);
  CHECK(nested.outputs[0].name == "p_dog");
  CHECK_FALSE(nested.outputs[0].binary);
  auto flat = v2::parse_infer(
      R"({"inputs":[{"name":"input","datatype":"FP32","shape":[2,3],"data":[1,2,3,4,5,6]}]})",
      std::nullopt, k_limits);
  CHECK(flat.inputs[0].floats.size() == 6);
}

TEST_CASE("binary sections follow the JSON in input order: BYTES elements and FP32", "[v2]") {
  std::string jpeg_a = "\xff\xd8 first", jpeg_b = std::string("\xff\xd8\0 second", 10);
  std::string bytes = le32(jpeg_a.size()) + jpeg_a + le32(jpeg_b.size()) + jpeg_b;
  std::string floats = floats_bytes({0.25f, -1.5f});
  std::string head =
      R"({"inputs":[{"name":"image","datatype":"BYTES","shape":[2],"parameters":{"binary_data_size":)" +
      std::to_string(bytes.size()) +
      R"(}},{"name":"input","datatype":"FP32","shape":[1,2],"parameters":{"binary_data_size":8}}],)"
      R"("parameters":{"binary_data_output":true}})";
  auto req = parse_binary(head, bytes + floats);
  REQUIRE(req.inputs.size() == 2);
  CHECK(req.inputs[0].bytes == std::vector<std::string>{jpeg_a, jpeg_b});
  CHECK(req.inputs[1].floats == std::vector<float>{0.25f, -1.5f});
  CHECK(req.binary_output);
}

TEST_CASE("malformed V2 requests are ProtocolErrors that say what is wrong", "[v2]") {
  auto refused = [](const std::string& body, std::optional<std::size_t> header_length,
                    const std::string& says) {
    INFO(body);
    try {
      v2::parse_infer(body, header_length, k_limits);
      FAIL("accepted");
    } catch (const v2::ProtocolError& e) {
      CHECK_THAT(e.what(), Catch::Contains(says));
    }
  };
  // a datatype cd-serve does not take
  refused(R"({"inputs":[{"name":"input","datatype":"INT64","shape":[1],"data":[1]}]})",
          std::nullopt, "has datatype INT64");
  // a shape whose product overflows 64 bits, and one larger than its data
  refused(R"({"inputs":[{"name":"input","datatype":"FP32","shape":[4294967296,4294967296,16],)"
          R"("data":[1]}]})",
          std::nullopt, "holds more elements than the 1 its data can carry");
  refused(R"({"inputs":[{"name":"input","datatype":"FP32","shape":[-1,3],"data":[1]}]})",
          std::nullopt, "negative dimension");
  // a shape that does not match the data
  refused(R"({"inputs":[{"name":"input","datatype":"FP32","shape":[1,3],"data":[1,2,3,4]}]})",
          std::nullopt, "holds 3 elements, but its data holds 4");
  // missing inputs, missing data
  refused(R"({"outputs":[]})", std::nullopt, "has no inputs");
  refused(R"({"inputs":[]})", std::nullopt, "has no inputs");
  refused(R"({"inputs":[{"name":"image","datatype":"BYTES","shape":[1]}]})", std::nullopt,
          "has no data");
  // strings in an FP32 tensor, objects in data, duplicate keys, bad JSON
  refused(R"({"inputs":[{"name":"input","datatype":"FP32","shape":[1],"data":["1"]}]})",
          std::nullopt, "holds strings");
  refused(R"({"inputs":[{"name":"input","datatype":"FP32","shape":[1],"data":[{}]}]})",
          std::nullopt, "neither a number nor a string");
  refused(R"({"inputs":[{"name":"a","name":"b","datatype":"FP32","shape":[1],"data":[1]}]})",
          std::nullopt, "appears twice");
  refused(R"({"inputs":[{"name":"input",)", std::nullopt, "not valid JSON");
  refused("[1,2]", std::nullopt, "not a JSON object");
}

TEST_CASE("truncated or inconsistent binary sections are refused before any copy", "[v2]") {
  auto refused = [](const std::string& head, const std::string& binary, const std::string& says) {
    try {
      parse_binary(head, binary);
      FAIL("accepted");
    } catch (const v2::ProtocolError& e) {
      CHECK_THAT(e.what(), Catch::Contains(says));
    }
  };
  std::string one =
      R"({"inputs":[{"name":"image","datatype":"BYTES","shape":[1],"parameters":{"binary_data_size":)";
  // the section is shorter than declared
  refused(one + R"(100}}]})", std::string(10, 'x'), "truncated");
  // an element declares more bytes than its section holds
  std::string element = le32(1000) + "abc";
  refused(one + std::to_string(element.size()) + "}}]}", element, "past the end");
  // an element's length itself is cut
  refused(one + "2}}]}", "ab", "inside an element's length");
  // bytes left over after the last section
  std::string ok = le32(3) + "abc";
  refused(one + std::to_string(ok.size()) + "}}]}", ok + "junk", "follow the last input");
  // FP32 whose byte count is not whole floats, or does not match the shape
  refused(
      R"({"inputs":[{"name":"input","datatype":"FP32","shape":[1],"parameters":{"binary_data_size":6}}]})",
      "123456", "not a whole number of floats");
  refused(
      R"({"inputs":[{"name":"input","datatype":"FP32","shape":[3],"parameters":{"binary_data_size":8}}]})",
      "12345678", "holds more elements than the 2");
  // binary_data_size without the header
  CHECK_THROWS_AS(v2::parse_infer(one + "3}}]}", std::nullopt, k_limits), v2::ProtocolError);
  // the header claims more than the body
  CHECK_THROWS_WITH(v2::parse_infer("{}", 100, k_limits), Catch::Contains("holds only 2 bytes"));
  CHECK_THROWS_AS(v2::parse_header_length("12abc"), v2::ProtocolError);
  CHECK(v2::parse_header_length("42") == 42);
}

TEST_CASE("more BYTES elements than the limit are refused while reading", "[v2]") {
  std::string data = "[";
  for (int i = 0; i < 65; ++i) data += std::string(i ? "," : "") + "\"x\"";
  data += "]";
  CHECK_THROWS_WITH(
      v2::parse_infer(
          R"({"inputs":[{"name":"image","datatype":"BYTES","shape":[65],"data":)" + data + "}]}",
          std::nullopt, k_limits),
      Catch::Contains("more than 64 BYTES elements"));
}

TEST_CASE("a response puts binary outputs after its JSON and says where the JSON ends", "[v2]") {
  v2::OutputTensor p{"p_dog", v2::DataType::k_fp32, {2, 1}, {0.25f, 0.75f}, {}, true};
  v2::OutputTensor label{"label", v2::DataType::k_bytes, {2, 1}, {}, {"cat", "dog"}, false};
  auto encoded = v2::encode_infer_response("catdog", "abc123", "r7", {p, label});
  REQUIRE(encoded.header_length);
  auto head = nlohmann::json::parse(encoded.body.substr(0, *encoded.header_length));
  CHECK(head["model_name"] == "catdog");
  CHECK(head["model_version"] == "abc123");
  CHECK(head["id"] == "r7");
  CHECK(head["outputs"][0]["parameters"]["binary_data_size"] == 8);
  CHECK_FALSE(head["outputs"][0].contains("data"));
  CHECK(head["outputs"][1]["data"] == nlohmann::json::array({"cat", "dog"}));
  CHECK(encoded.body.substr(*encoded.header_length) == floats_bytes({0.25f, 0.75f}));

  p.binary = false;
  auto plain = v2::encode_infer_response("catdog", "abc123", "", {p});
  CHECK_FALSE(plain.header_length);
  auto body = nlohmann::json::parse(plain.body);
  CHECK_FALSE(body.contains("id"));
  CHECK(body["outputs"][0]["data"] == nlohmann::json::array({0.25, 0.75}));
  CHECK(v2::error_body("bad \xff") == R"({"error":"bad )"
                                      "\xef\xbf\xbd"
                                      R"("})");
}
