// cd-predict's command-line inputs: files, directories (expanded to their
// images, recursively and sorted), manifests (a cd-prepare CSV, expanded to
// its rows' paths) and "-" (one path per line from stdin); and the shard of
// them one process of a batch job takes.
#pragma once

#include <iosfwd>
#include <string>
#include <vector>

#include "runtime/predictor.h"

namespace cd {

// Problems (a missing path, an empty directory) become Predictions with an
// error, so they are reported in order with the rest.
std::vector<Prediction> expand_inputs(const std::vector<std::string>& args, std::istream& in);

// Shard `index` of `count`: one contiguous block of the expanded inputs, the
// blocks' sizes differing by at most one, so shard outputs concatenated in
// index order are the unsharded output.
struct Shard {
  std::size_t index = 0, count = 1;
};
// "I/N", or "N" with I from JOB_COMPLETION_INDEX (a Kubernetes Indexed Job);
// a JOB_COMPLETION_INDEX that disagrees with an explicit I is an error.
// Throws UsageError naming what is wrong.
Shard parse_shard(const std::string& text, const char* job_completion_index);
std::vector<Prediction> take_shard(std::vector<Prediction> items, const Shard& shard);

}  // namespace cd
