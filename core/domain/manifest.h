// Manifests: the CSV files (path,label) that cd-prepare writes and the other
// stages read. Relative paths in a manifest are relative to the manifest's
// own folder, so the pipeline works from any working directory.
#pragma once

#include <string>
#include <vector>

#include "domain/labels.h"

namespace cd {

struct Sample {
  std::string path;
  int label = 0;  // index into class_names(); dog = 1 is the positive class
};

std::string csv_escape(const std::string& field);
std::vector<std::string> csv_split(const std::string& line);  // UsageError-free; throws DataError

std::string format_manifest(const std::vector<Sample>& samples);
// Throws DataError naming the file and line for a bad header, row or label.
std::vector<Sample> read_manifest(const std::string& path);
std::vector<Sample> parse_manifest(const std::string& text, const std::string& origin);

// Content fingerprint of a manifest, stored in models for provenance.
std::string manifest_fingerprint(const std::vector<Sample>& samples);

}  // namespace cd
