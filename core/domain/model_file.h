// The self-describing model file (and the training checkpoint, which shares
// its container): a magic line, a format version, a JSON metadata block and
// a LibTorch archive of the weights, then the inference graph. Loading checks each part and reports
// a truncated, foreign or newer-format file as cd::ModelError, never a crash.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

#include "domain/image.h"
#include "domain/labels.h"

namespace cd {

// 2 adds a checksum (FNV-1a 64 of every byte before it) after the weights;
// 3 adds the inference graph (runtime/graph.h) after the weights, which
// cd-predict and cd-serve run without LibTorch; 4 changes only the checksum,
// to util/hash.h's checksum64: FNV-1a took 40 ms of every cold start of a
// 40 MB model, checksum64 takes a few. Files of versions 1 to 3 still load;
// cd-export --format cdm rewrites them as the current version.
constexpr std::uint32_t k_model_format_version = 4;

enum class FileKind : std::uint32_t { k_model = 1, k_checkpoint = 2 };

struct ModelMeta {
  std::uint32_t format_version = k_model_format_version;
  std::string architecture = "compact";
  nlohmann::json arch_params = nlohmann::json::object();
  PreprocessSpec preprocess;
  std::vector<std::string> classes = class_names();
  double threshold = 0.5;
  bool tta_flip = false;
  std::string created;  // ISO 8601 UTC
  std::string git_commit;
  std::string data_fingerprint;
  nlohmann::json val_metrics = nlohmann::json::object();
};

nlohmann::json meta_to_json(const ModelMeta& meta);
// origin names the file in errors.
ModelMeta meta_from_json(const nlohmann::json& j, const std::string& origin);

struct FileParts {
  FileKind kind = FileKind::k_model;
  nlohmann::json meta;
  std::string payload;  // LibTorch archive bytes
  std::string graph;    // the inference graph's bytes; empty in a checkpoint or before version 3
};

// The same parts, as views into bytes the caller keeps (a mapped file), so
// nothing is copied: the inference runtime reads the graph in place.
struct FilePartsView {
  FileKind kind = FileKind::k_model;
  nlohmann::json meta;
  std::string_view payload;
  std::string_view graph;
};

std::string pack_file(const FileParts& parts);
// Throws ModelError naming the path: missing, foreign, truncated, newer
// format, trailing bytes, or a checksum that does not match the contents.
FileParts unpack_file(const std::string& bytes, const std::string& origin);
FilePartsView unpack_view(std::string_view bytes, const std::string& origin);
FileParts read_parts(const std::string& path, FileKind expected);
// ModelError when a file is of another kind (a checkpoint given as a model).
void check_kind(FileKind kind, FileKind expected, const std::string& path);

// Metadata only, without touching the weights (for /model and fast checks).
ModelMeta read_model_meta(const std::string& path);

std::string utc_now_iso8601();

}  // namespace cd
