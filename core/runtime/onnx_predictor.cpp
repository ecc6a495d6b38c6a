// .onnx models (cd-export's) read into an InferenceGraph for catdog's oneDNN
// runtime, by a small protobuf reader: no LibTorch, no ONNX or OpenCV library.
#include <cmath>
#include <cstdint>
#include <cstring>
#include <nlohmann/json.hpp>
#include <set>
#include <string_view>

#include "runtime/predictor.h"
#include "util/atomic_file.h"
#include "util/errors.h"
#include "util/mapped_file.h"

namespace cd {

namespace {

// Protobuf's wire format, as much as cd-export's ModelProto takes: fields
// with their payload (length-delimited) or their number (varint, fixed).
struct Wire {
  std::string_view bytes;
  std::size_t pos = 0;

  bool varint(std::uint64_t& v) {
    v = 0;
    for (int shift = 0; shift < 64 && pos < bytes.size(); shift += 7) {
      auto b = static_cast<unsigned char>(bytes[pos++]);
      v |= static_cast<std::uint64_t>(b & 0x7F) << shift;
      if (!(b & 0x80)) return true;
    }
    return false;
  }
  bool fixed(int n, std::uint64_t& v) {
    if (bytes.size() - pos < static_cast<std::size_t>(n)) return false;
    v = 0;
    for (int i = 0; i < n; ++i)
      v |= static_cast<std::uint64_t>(static_cast<unsigned char>(bytes[pos + i])) << (8 * i);
    pos += n;
    return true;
  }
  // The next field: its number and wire type, and its payload
  // (length-delimited) or value (varint, 64- or 32-bit).
  bool next(std::uint64_t& field, std::string_view& payload, std::uint64_t& value, int& type) {
    std::uint64_t key, n;
    payload = {};
    value = 0;
    if (pos >= bytes.size() || !varint(key)) return false;
    field = key >> 3;
    type = static_cast<int>(key & 7);
    switch (type) {
      case 0:
        return varint(value);
      case 1:
        return fixed(8, value);
      case 2:
        if (!varint(n) || n > bytes.size() - pos) return false;
        payload = bytes.substr(pos, n);
        pos += n;
        return true;
      case 5:
        return fixed(4, value);
      default:
        return false;
    }
  }
  bool next(std::uint64_t& field, std::string_view& payload) {
    std::uint64_t value;
    int type;
    return next(field, payload, value, type);
  }
};

float as_float(std::uint64_t bits) {
  auto b = static_cast<std::uint32_t>(bits);
  float f;
  std::memcpy(&f, &b, sizeof f);
  return f;
}

// A repeated int64 field, packed or not.
void read_ints(int type, std::string_view payload, std::uint64_t value,
               std::vector<std::int64_t>& out) {
  if (type == 0) {
    out.push_back(static_cast<std::int64_t>(value));
    return;
  }
  Wire packed{payload};
  std::uint64_t v;
  while (packed.pos < payload.size() && packed.varint(v))
    out.push_back(static_cast<std::int64_t>(v));
}

void read_attribute(std::string_view bytes, GraphNode& node) {
  Wire w{bytes};
  std::uint64_t field, value;
  std::string_view payload;
  int type;
  std::string name;
  std::vector<std::int64_t> ints;
  float f = 0;
  bool has_f = false, has_i = false;
  while (w.next(field, payload, value, type)) {
    if (field == 1) name = payload;
    if (field == 2 && type == 5) f = as_float(value), has_f = true;
    if (field == 3 && type == 0) ints.push_back(static_cast<std::int64_t>(value)), has_i = true;
    if (field == 8) read_ints(type, payload, value, ints), has_i = true;
  }
  if (has_f) node.floats[name] = f;
  if (has_i) node.ints[name] = ints;
}

GraphNode read_node(std::string_view bytes) {
  GraphNode node;
  Wire w{bytes};
  std::uint64_t field;
  std::string_view payload;
  while (w.next(field, payload)) {
    if (field == 1) node.inputs.emplace_back(payload);
    if (field == 2) node.output = payload;
    if (field == 4) node.op = payload;
    if (field == 5) read_attribute(payload, node);
  }
  return node;
}

// An initializer: float raw_data or float_data. Throws ModelError. raw_data
// is read in place when `backing` keeps the bytes and they are aligned.
std::pair<std::string, GraphWeight> read_tensor(std::string_view bytes, const std::string& origin,
                                                const std::shared_ptr<const void>& backing) {
  Wire w{bytes};
  std::uint64_t field, value;
  std::string_view payload, raw;
  int type;
  std::string name;
  GraphWeight t;
  std::uint64_t data_type = 1;
  while (w.next(field, payload, value, type)) {
    if (field == 1) read_ints(type, payload, value, t.dims);
    if (field == 2) data_type = value;
    if (field == 8) name = payload;
    if (field == 9) raw = payload;
    if (field == 4 && type == 5) t.values.push_back(as_float(value));
    if (field == 4 && type == 2)
      for (std::size_t i = 0; i + 4 <= payload.size(); i += 4) {
        float f;
        std::memcpy(&f, payload.data() + i, 4);
        t.values.push_back(f);
      }
  }
  if (data_type != 1)
    throw ModelError(origin + ": initializer '" + name +
                     "' is not float; export it with cd-export");
  if (!raw.empty() && can_borrow(raw.data(), backing)) {
    t.borrowed = reinterpret_cast<const float*>(raw.data());
    t.borrowed_count = raw.size() / 4;
  } else if (raw.size() >= 4) {  // fewer bytes than one float: no values (the count check says so)
    t.values.resize(raw.size() / 4);
    std::memcpy(t.values.data(), raw.data(), t.values.size() * 4);
  }
  std::uint64_t count = 1;
  for (std::int64_t d : t.dims) {
    if (d < 1 || d > (1 << 24))
      throw ModelError(origin + ": initializer '" + name + "' has a bad shape");
    count *= static_cast<std::uint64_t>(d);
  }
  if (count != t.count())
    throw ModelError(origin + ": initializer '" + name + "' holds " + std::to_string(t.count()) +
                     " values for its shape; the file is corrupt");
  const float* values = t.data();
  for (std::size_t i = 0; i < t.count(); ++i)
    if (!std::isfinite(values[i]))
      throw ModelError(origin + ": initializer '" + name +
                       "' holds NaN or Inf; the file is corrupt");
  return {name, std::move(t)};
}

// The first input and output a GraphProto names (ValueInfoProto field 1).
std::string value_name(std::string_view bytes) {
  Wire w{bytes};
  std::uint64_t field;
  std::string_view payload;
  while (w.next(field, payload))
    if (field == 1) return std::string(payload);
  return {};
}

}  // namespace

ModelMeta read_onnx_meta(std::string_view bytes, const std::string& origin) {
  Wire model{bytes};
  std::uint64_t field;
  std::string_view payload;
  while (model.next(field, payload)) {
    if (field != 14) continue;
    Wire entry{payload};
    std::string_view key, value, part;
    std::uint64_t f;
    while (entry.next(f, part)) {
      if (f == 1) key = part;
      if (f == 2) value = part;
    }
    if (key != "catdog.meta") continue;
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(value);
    } catch (const std::exception&) {
      throw ModelError(origin + ": its catdog.meta is not valid JSON; export it again");
    }
    return meta_from_json(j, origin);
  }
  throw ModelError(origin +
                   ": not an ONNX file from cd-export (no catdog.meta in "
                   "metadata_props); export it with cd-export");
}

std::vector<std::size_t> onnx_raw_data_offsets(std::string_view bytes) {
  std::vector<std::size_t> offsets;
  Wire model{bytes};
  std::uint64_t field;
  std::string_view graph_bytes, tensor, payload;
  while (model.next(field, payload))
    if (field == 7) graph_bytes = payload;
  Wire graph{graph_bytes};
  while (graph.next(field, tensor)) {
    if (field != 5) continue;
    Wire t{tensor};
    while (t.next(field, payload))
      if (field == 9) offsets.push_back(static_cast<std::size_t>(payload.data() - bytes.data()));
  }
  return offsets;
}

InferenceGraph read_onnx_graph(std::string_view bytes, const std::string& origin,
                               std::shared_ptr<const void> backing) {
  Wire model{bytes};
  std::uint64_t field;
  std::string_view payload, graph_bytes;
  while (model.next(field, payload))
    if (field == 7) graph_bytes = payload;
  if (graph_bytes.empty()) throw ModelError(origin + ": this ONNX file holds no graph");
  InferenceGraph g;
  g.input.clear();
  Wire graph{graph_bytes};
  while (graph.next(field, payload)) {
    if (field == 1) g.nodes.push_back(read_node(payload));
    if (field == 5) g.weights.insert(read_tensor(payload, origin, backing));
    if (field == 11 && g.input.empty()) g.input = value_name(payload);
    if (field == 12 && g.output.empty()) g.output = value_name(payload);
  }
  // The same checks as a model file's graph: names made before they are read.
  std::set<std::string> known{g.input};
  for (const auto& [name, w] : g.weights) known.insert(name);
  for (const GraphNode& n : g.nodes) {
    for (const std::string& in : n.inputs)
      if (!known.count(in))
        throw ModelError(origin + ": node " + n.op + " reads '" + in +
                         "' before it is made; the file is corrupt");
    known.insert(n.output);
  }
  if (g.input.empty() || !known.count(g.output))
    throw ModelError(origin + ": the ONNX graph names no input or never computes its output");
  g.backing = std::move(backing);
  return g;
}

std::unique_ptr<Predictor> open_onnx_predictor(const std::string& path, int threads) {
  // Mapped, not read: the bytes are parsed straight from the page cache, and
  // the weights stay there (the graph keeps the mapping) until the runtime
  // reorders them into the layouts its primitives want.
  std::shared_ptr<const MappedFile> file;
  try {
    file = std::make_shared<const MappedFile>(path);
  } catch (const IoError& e) {
    throw ModelError(e.what());
  }
  std::string_view bytes = file->bytes();
  ModelMeta meta = read_onnx_meta(bytes, path);
  return open_graph_predictor(path, std::move(meta), read_onnx_graph(bytes, path, file), threads,
                              /*exported=*/true);
}

}  // namespace cd
