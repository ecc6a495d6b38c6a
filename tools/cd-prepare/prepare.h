// cd-prepare's engine: scan a folder in Kaggle's flat layout or with class
// subfolders, decode and validate every image in parallel, drop exact
// duplicates, and split the rest stratified and seeded.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "domain/manifest.h"

namespace cd {

struct PrepareParams {
  std::string source;
  std::string output = "data/prepared";
  int seed = 42;
  std::vector<double> split{0.8, 0.1, 0.1};
  int min_size = 32;
  int threads = 0;  // 0: every core
  // A list of files to leave out (one name per line, '#' comments): a file
  // name matches every file of that name, a path with '/' the file at that
  // path under the source. They are taken out after the split, so every
  // other image keeps the split it had without the list.
  std::string exclude;
};

struct Rejection {
  std::string path;
  std::string reason;
};

struct Duplicate {
  std::string path;
  std::string duplicate_of;
  bool label_conflict = false;
};

struct PrepareResult {
  std::size_t found = 0;
  std::vector<Sample> splits[3];  // train, val, test; each sorted by path
  std::vector<Rejection> rejected;
  std::vector<Duplicate> duplicates;
  std::vector<std::string> excluded;   // paths the exclusion list took out
  std::vector<std::string> unmatched;  // list entries that named no kept file
  double seconds = 0;
};

// One candidate file found by the scan.
struct Candidate {
  std::string path;    // as it will appear in the manifests
  int label = -1;      // -1 when the class is unknown
  std::string reject;  // non-empty when the scan already rules the file out
};

std::vector<Candidate> scan_source(const std::string& source);

// Validates one file's bytes; returns an empty string when it is usable,
// otherwise the rejection reason.
std::string validate_image_bytes(const std::string& bytes, int min_size);

// Splits per class with a seeded shuffle; sizes are rounded per class.
void stratified_split(std::vector<Sample> samples, const std::vector<double>& fractions,
                      std::uint64_t seed, std::vector<Sample> out[3]);

// The exclusion list's entries. Throws UsageError when the file cannot be read.
std::vector<std::string> read_exclusion_list(const std::string& path);

PrepareResult run_prepare(const PrepareParams& params);

// Writes train/val/test.csv, report.json and metrics.json into params.output.
void write_prepare_outputs(const PrepareParams& params, const PrepareResult& result);

}  // namespace cd
