#include "domain/model_file.h"

#include <cmath>
#include <cstring>
#include <ctime>

#include "util/atomic_file.h"
#include "util/errors.h"
#include "util/hash.h"

namespace cd {

namespace {

constexpr char k_magic[8] = {'C', 'D', 'M', 'O', 'D', 'E', 'L', '\n'};

void put_u32(std::string& out, std::uint32_t v) {
  for (int i = 0; i < 4; ++i) out += static_cast<char>((v >> (8 * i)) & 0xff);
}
void put_u64(std::string& out, std::uint64_t v) {
  for (int i = 0; i < 8; ++i) out += static_cast<char>((v >> (8 * i)) & 0xff);
}
std::uint64_t get_le(std::string_view in, std::size_t pos, int bytes) {
  std::uint64_t v = 0;
  for (int i = 0; i < bytes; ++i)
    v |= static_cast<std::uint64_t>(static_cast<unsigned char>(in[pos + i])) << (8 * i);
  return v;
}

const char* kind_name(FileKind kind) { return kind == FileKind::k_model ? "model" : "checkpoint"; }

}  // namespace

nlohmann::json meta_to_json(const ModelMeta& m) {
  return {{"format_version", m.format_version},
          {"architecture", m.architecture},
          {"arch_params", m.arch_params},
          {"input_size", m.preprocess.size},
          {"resize", to_string(m.preprocess.resize)},
          {"normalization", to_string(m.preprocess.norm)},
          {"classes", m.classes},
          {"positive_class", label_name(Label::k_dog)},
          {"threshold", m.threshold},
          {"tta_flip", m.tta_flip},
          {"created", m.created},
          {"git_commit", m.git_commit},
          {"data_fingerprint", m.data_fingerprint},
          {"val_metrics", m.val_metrics}};
}

ModelMeta meta_from_json(const nlohmann::json& j, const std::string& origin) {
  ModelMeta m;
  try {
    m.format_version = j.at("format_version").get<std::uint32_t>();
    m.architecture = j.at("architecture").get<std::string>();
    m.arch_params = j.value("arch_params", nlohmann::json::object());
    m.preprocess.size = j.at("input_size").get<int>();
    m.preprocess.resize = parse_resize_policy(j.at("resize").get<std::string>());
    m.preprocess.norm = parse_normalization(j.at("normalization").get<std::string>());
    m.classes = j.at("classes").get<std::vector<std::string>>();
    m.threshold = j.at("threshold").get<double>();
    m.tta_flip = j.value("tta_flip", false);
    m.created = j.value("created", "");
    m.git_commit = j.value("git_commit", "");
    m.data_fingerprint = j.value("data_fingerprint", "");
    m.val_metrics = j.value("val_metrics", nlohmann::json::object());
  } catch (const std::exception& e) {
    throw ModelError(origin + ": metadata is incomplete or malformed (" + e.what() + ")");
  }
  if (m.classes != class_names()) throw ModelError(origin + ": classes must be [cat, dog]");
  if (m.preprocess.size < 16 || m.preprocess.size > 1024)
    throw ModelError(origin + ": input_size " + std::to_string(m.preprocess.size) +
                     " is out of range");
  if (!(m.threshold > 0.0 && m.threshold < 1.0))
    throw ModelError(origin + ": threshold must be in (0, 1)");
  // Numbers the network is built from: a batch-norm epsilon must be a small
  // positive number and a leaky slope a fraction, or the outputs are garbage.
  auto in_range = [&](const char* key, double lo, double hi, bool open_lo) {
    auto it = m.arch_params.find(key);
    if (it == m.arch_params.end()) return;
    double v = it->is_number() ? it->get<double>() : std::nan("");
    if (!(open_lo ? v > lo : v >= lo) || !(v < hi))
      throw ModelError(origin + ": arch_params." + key + " is out of range; the file is corrupt");
  };
  in_range("bn_eps", 0.0, 1.0, true);
  in_range("leaky", 0.0, 1.0, false);
  return m;
}

std::string pack_file(const FileParts& parts) {
  std::string meta = parts.meta.dump();
  if (!parts.graph.empty()) {
    // The runtime reads the graph's weights in place from the mapped file
    // (runtime/graph.h), which floats allow only when aligned: spaces after
    // the metadata (the same JSON) start the graph on a 64-byte boundary.
    std::size_t graph_at = sizeof k_magic + 4 + 4 + 8 + meta.size() + 8 + parts.payload.size() + 8;
    meta.append((64 - graph_at % 64) % 64, ' ');
  }
  std::string out(k_magic, sizeof k_magic);
  put_u32(out, k_model_format_version);
  put_u32(out, static_cast<std::uint32_t>(parts.kind));
  put_u64(out, meta.size());
  out += meta;
  put_u64(out, parts.payload.size());
  out += parts.payload;
  put_u64(out, parts.graph.size());
  out += parts.graph;
  put_u64(out, checksum64(out));
  return out;
}

FilePartsView unpack_view(std::string_view bytes, const std::string& origin) {
  if (bytes.size() < sizeof k_magic || std::memcmp(bytes.data(), k_magic, sizeof k_magic) != 0)
    throw ModelError(origin + ": not a catdog model file (bad magic); was it written by cd-train?");
  std::size_t pos = sizeof k_magic, end = bytes.size();
  auto need = [&](std::size_t n) {
    if (end - pos < n)
      throw ModelError(origin + ": file is truncated (" + std::to_string(bytes.size()) +
                       " bytes); re-copy or retrain it");
  };
  need(8);
  auto version = static_cast<std::uint32_t>(get_le(bytes, pos, 4));
  auto kind = static_cast<std::uint32_t>(get_le(bytes, pos + 4, 4));
  pos += 8;
  if (version > k_model_format_version)
    throw ModelError(origin + ": format version " + std::to_string(version) +
                     " is newer than this build supports (" +
                     std::to_string(k_model_format_version) + "); upgrade catdog");
  if (kind != 1 && kind != 2)
    throw ModelError(origin + ": unknown file kind " + std::to_string(kind));
  if (version >= 2) {  // the checksum ends the file
    need(8);
    end -= 8;
  }
  // The layout first (lengths only), then the checksum, and only then is
  // any of the content believed.
  need(8);
  std::uint64_t meta_len = get_le(bytes, pos, 8);
  std::size_t meta_at = pos + 8;
  pos = meta_at;
  need(meta_len);
  pos += meta_len;
  need(8);
  std::uint64_t payload_len = get_le(bytes, pos, 8);
  std::size_t payload_at = pos + 8;
  pos = payload_at;
  need(payload_len);
  pos += payload_len;
  std::uint64_t graph_len = 0;
  std::size_t graph_at = pos;
  if (version >= 3) {
    need(8);
    graph_len = get_le(bytes, pos, 8);
    graph_at = pos + 8;
    pos = graph_at;
    need(graph_len);
    pos += graph_len;
  }
  if (pos != end)
    throw ModelError(origin + ": " + std::to_string(end - pos) +
                     " unexpected bytes after the weights; the file is corrupt");
  if (version >= 2) {
    std::uint64_t stored = get_le(bytes, end, 8);
    std::string_view body(bytes.data(), end);
    std::uint64_t computed = version >= 4 ? checksum64(body) : fnv1a64(body);
    if (stored != computed)
      throw ModelError(origin + ": checksum mismatch (stored " + hex64(stored) + ", contents " +
                       hex64(computed) + "): the file is corrupt; re-copy or retrain it");
  }
  FilePartsView parts;
  parts.kind = static_cast<FileKind>(kind);
  try {
    parts.meta = nlohmann::json::parse(bytes.substr(meta_at, meta_len));
  } catch (const std::exception&) {
    throw ModelError(origin + ": metadata block is not valid JSON; the file is corrupt");
  }
  parts.payload = bytes.substr(payload_at, payload_len);
  parts.graph = bytes.substr(graph_at, graph_len);
  return parts;
}

FileParts unpack_file(const std::string& bytes, const std::string& origin) {
  FilePartsView view = unpack_view(bytes, origin);
  return {view.kind, std::move(view.meta), std::string(view.payload), std::string(view.graph)};
}

void check_kind(FileKind kind, FileKind expected, const std::string& path) {
  if (kind != expected)
    throw ModelError(path + ": is a " + kind_name(kind) + " file, expected a " +
                     kind_name(expected));
}

FileParts read_parts(const std::string& path, FileKind expected) {
  std::string bytes;
  try {
    bytes = read_file(path);
  } catch (const IoError& e) {
    throw ModelError(e.what());
  }
  FileParts parts = unpack_file(bytes, path);
  check_kind(parts.kind, expected, path);
  return parts;
}

ModelMeta read_model_meta(const std::string& path) {
  FileParts parts = read_parts(path, FileKind::k_model);
  return meta_from_json(parts.meta, path);
}

std::string utc_now_iso8601() {
  std::time_t t = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

}  // namespace cd
