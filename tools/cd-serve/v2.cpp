#include "cd-serve/v2.h"

#include <cstring>
#include <limits>

#include <nlohmann/json.hpp>

static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__,
              "the binary tensor data extension is little-endian, as is this copy of it");

namespace cd::serve::v2 {

namespace {

using json = nlohmann::json;

// Values of the JSON outside the inputs' "data" arrays: names, shapes,
// parameters. Far more than a request needs; the data is streamed apart.
constexpr std::size_t k_max_values = 4096;

// What one input's "data" array held, streamed out of the JSON as it is read
// (a DOM would cost 16 bytes per number, 8 times the text "0,").
struct Streamed {
  std::vector<float> floats;
  std::vector<std::string> bytes;
  bool present = false;
};

// Builds a DOM of everything but inputs[i].data, which goes to Streamed.
class RequestSax {
 public:
  explicit RequestSax(const Limits& limits) : m_limits(limits) {}

  json root;
  std::vector<Streamed> streamed;
  std::string error;  // set when a handler stopped the parse

  bool null() { return in_data() ? bad_element() : value(nullptr); }
  bool boolean(bool v) { return in_data() ? bad_element() : value(v); }
  bool number_integer(json::number_integer_t v) { return number(static_cast<double>(v), v); }
  bool number_unsigned(json::number_unsigned_t v) { return number(static_cast<double>(v), v); }
  bool number_float(json::number_float_t v, const std::string&) { return number(v, v); }
  bool string(std::string& v) {
    if (!in_data()) return value(std::move(v));
    auto& s = streamed.back();
    if (s.bytes.size() >= m_limits.max_bytes_elements)
      return fail("input " + std::to_string(streamed.size() - 1) + " holds more than " +
                  std::to_string(m_limits.max_bytes_elements) + " BYTES elements");
    s.bytes.push_back(std::move(v));
    return true;
  }
  bool binary(json::binary_t&) { return fail("binary JSON values are not JSON"); }
  bool start_object(std::size_t) {
    if (in_data()) return bad_element();
    Role role = Role::k_other;
    if (m_stack.empty())
      role = Role::k_root;
    else if (m_stack.back().role == Role::k_inputs)
      role = Role::k_input;
    if (role == Role::k_input) streamed.emplace_back();
    return open(json::object(), role);
  }
  bool key(std::string& k) {
    m_key = std::move(k);
    return true;
  }
  bool end_object() { return close(); }
  bool start_array(std::size_t) {
    if (in_data()) {
      m_stack.push_back({nullptr, Role::k_data});
      return true;
    }
    if (!m_stack.empty() && m_stack.back().role == Role::k_input && m_key == "data") {
      if (streamed.back().present) return fail("the key \"data\" appears twice in one input");
      streamed.back().present = true;
      m_stack.push_back({nullptr, Role::k_data});
      return true;
    }
    bool inputs = m_stack.size() == 1 && m_stack.back().role == Role::k_root && m_key == "inputs";
    return open(json::array(), inputs ? Role::k_inputs : Role::k_other);
  }
  bool end_array() { return close(); }
  bool parse_error(std::size_t position, const std::string&, const json::exception& e) {
    if (error.empty()) {
      std::string what = e.what();
      // nlohmann's message: "[json.exception.parse_error.101] parse error at line 1, column 7: ..."
      auto at = what.find("] ");
      error = "the request is not valid JSON (byte " + std::to_string(position) +
              "): " + (at == std::string::npos ? what : what.substr(at + 2));
    }
    return false;
  }

 private:
  enum class Role { k_root, k_inputs, k_input, k_data, k_other };
  struct Frame {
    json* node;
    Role role;
  };

  bool in_data() const { return !m_stack.empty() && m_stack.back().role == Role::k_data; }
  bool fail(std::string message) {
    error = std::move(message);
    return false;
  }
  bool bad_element() {
    return fail("the data of input " + std::to_string(streamed.size() - 1) +
                " holds a value that is neither a number nor a string");
  }
  bool number(double as_double, json v) {
    if (!in_data()) return value(std::move(v));
    streamed.back().floats.push_back(static_cast<float>(as_double));
    return true;
  }
  json* insert(json v) {
    if (++m_values > k_max_values) {
      fail("the request's JSON holds more than " + std::to_string(k_max_values) +
           " values outside the inputs' data");
      return nullptr;
    }
    if (m_stack.empty()) {
      root = std::move(v);
      return &root;
    }
    json& parent = *m_stack.back().node;
    if (parent.is_array()) {
      parent.push_back(std::move(v));
      return &parent.back();
    }
    // A repeated key would leave a streamed "data" without its input.
    if (parent.contains(m_key)) {
      fail("the key \"" + m_key + "\" appears twice in one object");
      return nullptr;
    }
    json& slot = parent[m_key];
    slot = std::move(v);
    return &slot;
  }
  bool value(json v) { return insert(std::move(v)) != nullptr; }
  bool open(json v, Role role) {
    json* node = insert(std::move(v));
    if (!node) return false;
    m_stack.push_back({node, role});
    return true;
  }
  bool close() {
    m_stack.pop_back();
    return true;
  }

  const Limits& m_limits;
  std::vector<Frame> m_stack;
  std::string m_key;
  std::size_t m_values = 0;
};

std::string in_quotes(const std::string& name) { return "'" + name + "'"; }

std::string shape_text(const std::vector<std::int64_t>& shape) {
  std::string s = "[";
  for (std::size_t i = 0; i < shape.size(); ++i) s += (i ? "," : "") + std::to_string(shape[i]);
  return s + "]";
}

const json* member(const json& object, const char* key) {
  auto it = object.find(key);
  return it == object.end() ? nullptr : &*it;
}

std::string string_member(const json& object, const char* key, const std::string& what) {
  const json* v = member(object, key);
  if (!v) throw ProtocolError(what + " has no \"" + key + "\"");
  if (!v->is_string())
    throw ProtocolError("\"" + std::string(key) + "\" of " + what + " is not a string");
  return v->get<std::string>();
}

bool bool_parameter(const json& object, const char* key, const std::string& what) {
  const json* params = member(object, "parameters");
  if (!params) return false;
  if (!params->is_object()) throw ProtocolError("\"parameters\" of " + what + " is not an object");
  const json* v = member(*params, key);
  if (!v) return false;
  if (!v->is_boolean())
    throw ProtocolError("parameter \"" + std::string(key) + "\" of " + what + " is not a boolean");
  return v->get<bool>();
}

std::optional<std::uint64_t> binary_size(const json& input, const std::string& what) {
  const json* params = member(input, "parameters");
  if (!params) return std::nullopt;
  if (!params->is_object()) throw ProtocolError("\"parameters\" of " + what + " is not an object");
  const json* v = member(*params, "binary_data_size");
  if (!v) return std::nullopt;
  if (!v->is_number_unsigned() && !(v->is_number_integer() && v->get<std::int64_t>() >= 0))
    throw ProtocolError("\"binary_data_size\" of " + what + " is not a byte count");
  return v->get<std::uint64_t>();
}

std::vector<std::int64_t> parse_shape(const json& input, const std::string& what) {
  const json* v = member(input, "shape");
  if (!v) throw ProtocolError(what + " has no \"shape\"");
  if (!v->is_array() || v->size() > 8)
    throw ProtocolError("\"shape\" of " + what + " is not an array of at most 8 dimensions");
  std::vector<std::int64_t> shape;
  for (const auto& d : *v) {
    if (d.is_number_unsigned()) {
      auto u = d.get<std::uint64_t>();
      if (u > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max()))
        throw ProtocolError("a dimension of " + what + " is too large");
      shape.push_back(static_cast<std::int64_t>(u));
    } else if (d.is_number_integer()) {
      shape.push_back(d.get<std::int64_t>());
    } else {
      throw ProtocolError("\"shape\" of " + what + " holds something other than integers");
    }
  }
  return shape;
}

// BYTES in the binary extension: each element is a 4-byte little-endian
// length followed by that many bytes.
std::vector<std::string> split_bytes(std::string_view section, const std::string& what,
                                     const Limits& limits) {
  std::vector<std::string> out;
  std::size_t at = 0;
  while (at < section.size()) {
    if (out.size() >= limits.max_bytes_elements)
      throw ProtocolError(what + " holds more than " + std::to_string(limits.max_bytes_elements) +
                          " BYTES elements");
    if (section.size() - at < 4)
      throw ProtocolError("the binary data of " + what + " ends inside an element's length");
    std::uint32_t n = 0;
    std::memcpy(&n, section.data() + at, 4);
    at += 4;
    if (n > section.size() - at)
      throw ProtocolError("element " + std::to_string(out.size()) + " of " + what + " declares " +
                          std::to_string(n) + " bytes, past the end of its binary data (" +
                          std::to_string(section.size() - at) + " remain): truncated");
    out.emplace_back(section.substr(at, n));
    at += n;
  }
  return out;
}

}  // namespace

const char* to_string(DataType type) { return type == DataType::k_bytes ? "BYTES" : "FP32"; }

std::size_t parse_header_length(const std::string& value) {
  if (value.empty() || value.size() > 18 ||
      value.find_first_not_of("0123456789") != std::string::npos)
    throw ProtocolError("Inference-Header-Content-Length '" + value + "' is not a byte count");
  return static_cast<std::size_t>(std::stoull(value));
}

std::uint64_t element_count(const std::vector<std::int64_t>& shape, std::uint64_t most) {
  std::uint64_t n = 1;
  for (std::int64_t d : shape) {
    if (d < 0) throw ProtocolError("shape " + shape_text(shape) + " has a negative dimension");
    auto u = static_cast<std::uint64_t>(d);
    if (u != 0 && n > most / u)
      throw ProtocolError("shape " + shape_text(shape) + " holds more elements than the " +
                          std::to_string(most) + " its data can carry");
    n *= u;
  }
  if (n > most)
    throw ProtocolError("shape " + shape_text(shape) + " holds more elements than the " +
                        std::to_string(most) + " its data can carry");
  return n;
}

InferRequest parse_infer(std::string_view body, std::optional<std::size_t> header_length,
                         const Limits& limits) {
  if (header_length && *header_length > body.size())
    throw ProtocolError("Inference-Header-Content-Length is " + std::to_string(*header_length) +
                        " but the body holds only " + std::to_string(body.size()) + " bytes");
  std::string_view text = header_length ? body.substr(0, *header_length) : body;
  std::string_view binary = header_length ? body.substr(*header_length) : std::string_view{};

  RequestSax sax(limits);
  bool ok = json::sax_parse(text.begin(), text.end(), &sax);
  if (!ok) throw ProtocolError(sax.error.empty() ? "the request is not valid JSON" : sax.error);
  const json& root = sax.root;
  if (!root.is_object()) throw ProtocolError("the request is not a JSON object");

  InferRequest req;
  if (const json* id = member(root, "id")) {
    if (!id->is_string()) throw ProtocolError("\"id\" is not a string");
    req.id = id->get<std::string>();
  }
  req.binary_output = bool_parameter(root, "binary_data_output", "the request");

  const json* inputs = member(root, "inputs");
  if (!inputs || !inputs->is_array() || inputs->empty())
    throw ProtocolError(
        "the request has no inputs; send one: \"image\" (BYTES) or \"input\" (FP32)");
  std::size_t offset = 0;
  for (std::size_t i = 0; i < inputs->size(); ++i) {
    const json& in = (*inputs)[i];
    std::string what = "input " + std::to_string(i);
    if (!in.is_object()) throw ProtocolError(what + " is not an object");
    InputTensor t;
    t.name = string_member(in, "name", what);
    what = "input " + in_quotes(t.name);
    std::string type = string_member(in, "datatype", what);
    if (type == "BYTES")
      t.datatype = DataType::k_bytes;
    else if (type == "FP32")
      t.datatype = DataType::k_fp32;
    else
      throw ProtocolError(what + " has datatype " + type +
                          "; cd-serve takes BYTES (encoded images) or FP32 (preprocessed tensors)");
    t.shape = parse_shape(in, what);
    // The streamed data belongs to the i-th input object (the SAX handler
    // counts them in the same order).
    Streamed& data = sax.streamed.at(i);
    auto size = binary_size(in, what);
    if (size && data.present)
      throw ProtocolError(what + " has both \"data\" and binary_data_size; send one");
    if (size) {
      if (!header_length)
        throw ProtocolError(what +
                            " declares binary_data_size, but the request has no "
                            "Inference-Header-Content-Length header");
      if (*size > binary.size() - offset)
        throw ProtocolError(what + " declares " + std::to_string(*size) +
                            " bytes of binary data, but " + std::to_string(binary.size() - offset) +
                            " remain: truncated");
      std::string_view section = binary.substr(offset, *size);
      offset += *size;
      if (t.datatype == DataType::k_fp32) {
        if (section.size() % 4)
          throw ProtocolError(what + " is FP32, but its " + std::to_string(section.size()) +
                              " bytes of binary data are not a whole number of floats");
        std::uint64_t n = element_count(t.shape, section.size() / 4);
        if (n * 4 != section.size())
          throw ProtocolError("shape " + shape_text(t.shape) + " of " + what + " holds " +
                              std::to_string(n) + " elements, but its binary data holds " +
                              std::to_string(section.size() / 4));
        t.floats.resize(n);
        if (n) std::memcpy(t.floats.data(), section.data(), section.size());
      } else {
        t.bytes = split_bytes(section, what, limits);
        std::uint64_t n = element_count(t.shape, t.bytes.size());
        if (n != t.bytes.size())
          throw ProtocolError("shape " + shape_text(t.shape) + " of " + what + " holds " +
                              std::to_string(n) + " elements, but its binary data holds " +
                              std::to_string(t.bytes.size()));
      }
    } else if (data.present) {
      if (t.datatype == DataType::k_fp32) {
        if (!data.bytes.empty()) throw ProtocolError(what + " is FP32, but its data holds strings");
        std::uint64_t n = element_count(t.shape, data.floats.size());
        if (n != data.floats.size())
          throw ProtocolError("shape " + shape_text(t.shape) + " of " + what + " holds " +
                              std::to_string(n) + " elements, but its data holds " +
                              std::to_string(data.floats.size()));
        t.floats = std::move(data.floats);
      } else {
        if (!data.floats.empty())
          throw ProtocolError(what + " is BYTES, but its data holds numbers");
        std::uint64_t n = element_count(t.shape, data.bytes.size());
        if (n != data.bytes.size())
          throw ProtocolError("shape " + shape_text(t.shape) + " of " + what + " holds " +
                              std::to_string(n) + " elements, but its data holds " +
                              std::to_string(data.bytes.size()));
        t.bytes = std::move(data.bytes);
      }
    } else if (member(in, "data")) {
      throw ProtocolError("\"data\" of " + what + " is not an array");
    } else {
      throw ProtocolError(what + " has no data: send \"data\", or binary_data_size and the bytes");
    }
    req.inputs.push_back(std::move(t));
  }
  if (offset != binary.size())
    throw ProtocolError(std::to_string(binary.size() - offset) +
                        " bytes follow the last input's binary data");

  if (const json* outputs = member(root, "outputs")) {
    if (!outputs->is_array()) throw ProtocolError("\"outputs\" is not an array");
    for (std::size_t i = 0; i < outputs->size(); ++i) {
      const json& out = (*outputs)[i];
      std::string what = "output " + std::to_string(i);
      if (!out.is_object()) throw ProtocolError(what + " is not an object");
      RequestedOutput r;
      r.name = string_member(out, "name", what);
      r.binary = bool_parameter(out, "binary_data", "output " + in_quotes(r.name));
      req.outputs.push_back(std::move(r));
    }
  }
  return req;
}

EncodedResponse encode_infer_response(const std::string& model_name, const std::string& version,
                                      const std::string& id,
                                      const std::vector<OutputTensor>& outputs) {
  json head{{"model_name", model_name}, {"model_version", version}};
  if (!id.empty()) head["id"] = id;
  head["outputs"] = json::array();
  std::string binary;
  for (const auto& o : outputs) {
    json t{{"name", o.name}, {"datatype", to_string(o.datatype)}, {"shape", o.shape}};
    if (o.binary) {
      std::size_t start = binary.size();
      if (o.datatype == DataType::k_fp32) {
        binary.append(reinterpret_cast<const char*>(o.floats.data()), o.floats.size() * 4);
      } else {
        for (const auto& s : o.bytes) {
          auto n = static_cast<std::uint32_t>(s.size());
          binary.append(reinterpret_cast<const char*>(&n), 4);
          binary += s;
        }
      }
      t["parameters"] = {{"binary_data_size", binary.size() - start}};
    } else if (o.datatype == DataType::k_fp32) {
      t["data"] = o.floats;
    } else {
      t["data"] = o.bytes;
    }
    head["outputs"].push_back(std::move(t));
  }
  EncodedResponse r;
  r.body = head.dump(-1, ' ', false, json::error_handler_t::replace);
  if (!binary.empty()) {
    r.header_length = r.body.size();
    r.body += binary;
  }
  return r;
}

std::string error_body(const std::string& message) {
  return json{{"error", message}}.dump(-1, ' ', false, json::error_handler_t::replace);
}

}  // namespace cd::serve::v2
