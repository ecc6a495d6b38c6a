// The Open Inference Protocol's ("V2", KServe and Triton) request and
// response bodies, apart from routing and models: a parser for inference
// requests in JSON, with or without the binary tensor data extension, and the
// encoder of inference responses. Every size the client declares (shapes,
// binary section lengths, element lengths) is checked against the bytes it
// sent before anything is allocated for it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace cd::serve::v2 {

// A request the protocol refuses: 400 with {"error": what()}.
class ProtocolError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

enum class DataType { k_bytes, k_fp32 };
const char* to_string(DataType type);

struct InputTensor {
  std::string name;
  DataType datatype = DataType::k_fp32;
  std::vector<std::int64_t> shape;
  std::vector<std::string> bytes;  // BYTES: one string per element
  std::vector<float> floats;       // FP32: row-major
};

struct RequestedOutput {
  std::string name;
  bool binary = false;
};

struct InferRequest {
  std::string id;
  std::vector<InputTensor> inputs;
  std::vector<RequestedOutput> outputs;  // empty: every output, in JSON unless binary_output
  bool binary_output = false;            // the request's parameters.binary_data_output
};

struct Limits {
  std::size_t max_bytes_elements = 64;  // BYTES elements in one request
};

// body: the whole request body. header_length: the value of the
// Inference-Header-Content-Length header, when the client sent one; then the
// first header_length bytes are the JSON and the rest the binary sections, in
// the order of the inputs that declare parameters.binary_data_size.
// Datatypes other than BYTES and FP32 are refused here, naming the input.
InferRequest parse_infer(std::string_view body, std::optional<std::size_t> header_length,
                         const Limits& limits);
// The header's value as a byte count; throws ProtocolError when it is not one.
std::size_t parse_header_length(const std::string& value);

// The elements a shape holds; throws ProtocolError when a dimension is
// negative or the product passes `most`.
std::uint64_t element_count(const std::vector<std::int64_t>& shape, std::uint64_t most);

struct OutputTensor {
  std::string name;
  DataType datatype = DataType::k_fp32;
  std::vector<std::int64_t> shape;
  std::vector<float> floats;
  std::vector<std::string> bytes;
  bool binary = false;
};

struct EncodedResponse {
  std::string body;
  std::optional<std::size_t> header_length;  // set when a binary section follows the JSON
};
EncodedResponse encode_infer_response(const std::string& model_name, const std::string& version,
                                      const std::string& id,
                                      const std::vector<OutputTensor>& outputs);

// {"error": message}, the protocol's error object.
std::string error_body(const std::string& message);

}  // namespace cd::serve::v2
