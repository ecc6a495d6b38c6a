#include "domain/manifest.h"

#include <algorithm>
#include <filesystem>

#include "util/atomic_file.h"
#include "util/errors.h"
#include "util/hash.h"

namespace cd {

std::string csv_escape(const std::string& field) {
  if (field.find_first_of(",\"\n\r") == std::string::npos) return field;
  std::string out = "\"";
  for (char c : field) {
    if (c == '"') out += '"';
    out += c;
  }
  return out + "\"";
}

std::vector<std::string> csv_split(const std::string& line) {
  std::vector<std::string> fields;
  std::string field;
  bool quoted = false;
  for (std::size_t i = 0; i < line.size(); ++i) {
    char c = line[i];
    if (quoted) {
      if (c == '"' && i + 1 < line.size() && line[i + 1] == '"') {
        field += '"';
        ++i;
      } else if (c == '"') {
        quoted = false;
      } else {
        field += c;
      }
    } else if (c == '"') {
      quoted = true;
    } else if (c == ',') {
      fields.push_back(std::move(field));
      field.clear();
    } else {
      field += c;
    }
  }
  if (quoted) throw DataError("unterminated quoted field");
  fields.push_back(std::move(field));
  return fields;
}

std::string format_manifest(const std::vector<Sample>& samples) {
  std::string out = "path,label\n";
  for (const auto& s : samples) out += csv_escape(s.path) + "," + class_names().at(s.label) + "\n";
  return out;
}

std::vector<Sample> parse_manifest(const std::string& text, const std::string& origin) {
  std::vector<Sample> samples;
  std::size_t pos = 0;
  int line_no = 0;
  while (pos < text.size()) {
    std::size_t end = text.find('\n', pos);
    if (end == std::string::npos) end = text.size();
    std::string line = text.substr(pos, end - pos);
    pos = end + 1;
    ++line_no;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.empty()) continue;
    std::vector<std::string> fields;
    try {
      fields = csv_split(line);
    } catch (const DataError& e) {
      throw DataError(origin + ":" + std::to_string(line_no) + ": " + e.what());
    }
    if (line_no == 1) {
      if (fields.size() != 2 || fields[0] != "path" || fields[1] != "label")
        throw DataError(origin +
                        ":1: expected the header 'path,label'; is this a cd-prepare manifest?");
      continue;
    }
    if (fields.size() != 2)
      throw DataError(origin + ":" + std::to_string(line_no) + ": expected 2 fields (path,label)");
    const auto& names = class_names();
    auto it = std::find(names.begin(), names.end(), fields[1]);
    if (it == names.end())
      throw DataError(origin + ":" + std::to_string(line_no) + ": unknown label '" + fields[1] +
                      "'; expected cat or dog");
    samples.push_back({fields[0], static_cast<int>(it - names.begin())});
  }
  if (line_no == 0) throw DataError(origin + ": empty file; expected the header 'path,label'");
  return samples;
}

std::vector<Sample> read_manifest(const std::string& path) {
  std::string text;
  try {
    text = read_file(path);
  } catch (const IoError& e) {
    throw DataError(std::string(e.what()) + "; run cd-prepare first");
  }
  std::vector<Sample> samples = parse_manifest(text, path);
  // Relative paths are relative to the manifest's folder (see cd-prepare).
  std::filesystem::path base = std::filesystem::path(path).parent_path();
  for (auto& s : samples)
    if (std::filesystem::path(s.path).is_relative())
      s.path = (base / s.path).lexically_normal().generic_string();
  return samples;
}

std::string manifest_fingerprint(const std::vector<Sample>& samples) {
  return hex64(fnv1a64(format_manifest(samples)));
}

}  // namespace cd
