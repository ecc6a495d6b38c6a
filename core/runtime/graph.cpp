#include "runtime/graph.h"

#include <cmath>
#include <cstring>
#include <nlohmann/json.hpp>
#include <set>

#include "util/errors.h"

namespace cd {

namespace {

constexpr std::string_view k_magic = "catdog-graph 1\n";
constexpr std::size_t k_align = 64;

std::size_t aligned(std::size_t n) { return (n + k_align - 1) / k_align * k_align; }

void put_u64(std::string& out, std::uint64_t v) {
  for (int i = 0; i < 8; ++i) out += static_cast<char>((v >> (8 * i)) & 0xff);
}

std::uint64_t get_u64(std::string_view in, std::size_t pos) {
  std::uint64_t v = 0;
  for (int i = 0; i < 8; ++i)
    v |= static_cast<std::uint64_t>(static_cast<unsigned char>(in[pos + i])) << (8 * i);
  return v;
}

}  // namespace

std::int64_t GraphNode::int_attr(const std::string& name, std::int64_t fallback) const {
  auto it = ints.find(name);
  return it == ints.end() || it->second.empty() ? fallback : it->second[0];
}

std::vector<std::int64_t> GraphNode::ints_attr(const std::string& name,
                                               std::vector<std::int64_t> fallback) const {
  auto it = ints.find(name);
  return it == ints.end() ? fallback : it->second;
}

float GraphNode::float_attr(const std::string& name, float fallback) const {
  auto it = floats.find(name);
  return it == floats.end() ? fallback : it->second;
}

std::string write_graph(const InferenceGraph& graph) {
  nlohmann::json nodes = nlohmann::json::array(), weights = nlohmann::json::array();
  for (const GraphNode& n : graph.nodes)
    nodes.push_back({{"op", n.op},
                     {"inputs", n.inputs},
                     {"output", n.output},
                     {"ints", n.ints},
                     {"floats", n.floats}});
  std::size_t offset = 0;
  for (const auto& [name, w] : graph.weights) {
    weights.push_back({{"name", name}, {"dims", w.dims}, {"offset", offset}});
    offset = aligned(offset + w.count() * sizeof(float));
  }
  std::string header = nlohmann::json{
      {"input", graph.input},
      {"output", graph.output},
      {"nodes", nodes},
      {"weights", weights}}.dump();
  std::string out(k_magic);
  put_u64(out, header.size());
  out += header;
  out.resize(aligned(out.size()), '\0');
  std::size_t data = out.size();
  out.resize(data + offset, '\0');
  std::size_t at = data;
  for (const auto& [name, w] : graph.weights) {
    // The floats as this little-endian machine holds them.
    std::memcpy(out.data() + at, w.data(), w.count() * sizeof(float));
    at = data + aligned(at - data + w.count() * sizeof(float));
  }
  return out;
}

InferenceGraph read_graph(std::string_view bytes, const std::string& origin,
                          std::shared_ptr<const void> backing) {
  auto corrupt = [&](const std::string& why) {
    return ModelError(origin + ": its inference graph " + why +
                      "; the file is corrupt (re-copy it, or rewrite it with cd-export --format "
                      "cdm)");
  };
  if (bytes.substr(0, k_magic.size()) != k_magic) throw corrupt("has no 'catdog-graph 1' magic");
  std::size_t pos = k_magic.size();
  if (bytes.size() - pos < 8) throw corrupt("is truncated");
  std::uint64_t header_len = get_u64(bytes, pos);
  pos += 8;
  if (header_len > bytes.size() - pos) throw corrupt("is truncated");
  nlohmann::json header;
  try {
    header = nlohmann::json::parse(bytes.substr(pos, header_len));
  } catch (const std::exception&) {
    throw corrupt("header is not valid JSON");
  }
  std::size_t data = aligned(pos + header_len);
  if (data > bytes.size()) throw corrupt("is truncated");
  InferenceGraph g;
  std::set<std::string> known;
  try {
    g.input = header.at("input").get<std::string>();
    g.output = header.at("output").get<std::string>();
    known.insert(g.input);
    for (const auto& w : header.at("weights")) {
      GraphWeight weight;
      // Integers only: a float out of int64's range converts with undefined
      // behaviour (found by fuzz_graph).
      for (const auto& d : w.at("dims")) {
        if (!d.is_number_integer()) throw corrupt("has a weight dimension that is not an integer");
        weight.dims.push_back(d.get<std::int64_t>());
      }
      std::uint64_t count = 1;
      for (std::int64_t d : weight.dims) {
        if (d < 1 || d > (1 << 24)) throw corrupt("has a weight with a dimension out of range");
        count *= static_cast<std::uint64_t>(d);
        if (count > (std::uint64_t{1} << 32)) throw corrupt("has a weight too large to be real");
      }
      if (!w.at("offset").is_number_unsigned()) throw corrupt("has a weight offset out of range");
      std::uint64_t offset = w.at("offset").get<std::uint64_t>();
      std::size_t room = bytes.size() - data;
      if (offset > room || count * sizeof(float) > room - offset) throw corrupt("is truncated");
      const char* at = bytes.data() + data + offset;
      if (can_borrow(at, backing)) {
        weight.borrowed = reinterpret_cast<const float*>(at);
        weight.borrowed_count = count;
      } else {
        weight.values.resize(count);
        std::memcpy(weight.values.data(), at, count * sizeof(float));
      }
      std::string name = w.at("name").get<std::string>();
      const float* values = weight.data();
      for (std::size_t i = 0; i < count; ++i)
        if (!std::isfinite(values[i])) throw corrupt("weight '" + name + "' holds NaN or Inf");
      known.insert(name);
      g.weights.emplace(std::move(name), std::move(weight));
    }
    for (const auto& n : header.at("nodes")) {
      GraphNode node;
      node.op = n.at("op").get<std::string>();
      node.inputs = n.at("inputs").get<std::vector<std::string>>();
      node.output = n.at("output").get<std::string>();
      node.ints = n.at("ints").get<std::map<std::string, std::vector<std::int64_t>>>();
      node.floats = n.at("floats").get<std::map<std::string, float>>();
      for (const std::string& in : node.inputs)
        if (!known.count(in))
          throw corrupt("node " + node.op + " reads '" + in + "' before it is made");
      known.insert(node.output);
      g.nodes.push_back(std::move(node));
    }
  } catch (const ModelError&) {
    throw;
  } catch (const std::exception& e) {
    throw corrupt(std::string("header is malformed (") + e.what() + ")");
  }
  if (!known.count(g.output)) throw corrupt("never computes its output '" + g.output + "'");
  g.backing = std::move(backing);
  return g;
}

}  // namespace cd
