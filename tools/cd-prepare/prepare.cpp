#include "cd-prepare/prepare.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>

#include <spdlog/spdlog.h>

#include "domain/image.h"
#include "util/atomic_file.h"
#include "util/errors.h"
#include "util/hash.h"
#include "util/parallel.h"
#include "util/progress.h"
#include "util/random.h"
#include "util/strings.h"

namespace cd {

namespace fs = std::filesystem;

namespace {

bool hidden(const fs::path& p) { return p.filename().string().rfind('.', 0) == 0; }

Candidate classify(const fs::path& file, const std::string& shown, int folder_label,
                   const std::string& folder) {
  Candidate c{shown, folder_label, ""};
  if (!has_image_extension(file.string())) {
    c.reject = "unsupported extension '" + file.extension().string() +
               "' (expected jpg, jpeg, png, bmp or webp)";
    return c;
  }
  if (!folder.empty() && folder_label < 0) {
    c.reject = "unknown class folder '" + folder + "' (expected cat/, cats/, dog/ or dogs/)";
    return c;
  }
  if (folder.empty()) {
    std::string name = file.filename().string();
    std::string prefix = name.substr(0, name.find('.'));
    c.label = label_from_name(prefix);
    if (c.label < 0)
      c.reject = "unknown class '" + prefix + "' in file name (expected cat.N.jpg or dog.N.jpg)";
  }
  return c;
}

struct Checked {
  std::string reason;
  std::uint64_t hash = 0;
  std::size_t size = 0;
};

// Manifests name images relative to the manifest's own folder (absolute
// sources stay absolute), so they work from any working directory.
std::vector<Sample> relative_to(std::vector<Sample> samples, const std::string& output) {
  fs::path out_abs = fs::absolute(output).lexically_normal();
  for (auto& s : samples) {
    fs::path p(s.path);
    if (p.is_relative())
      s.path = fs::absolute(p).lexically_normal().lexically_relative(out_abs).generic_string();
  }
  return samples;
}

}  // namespace

std::vector<Candidate> scan_source(const std::string& source) {
  std::error_code ec;
  if (!fs::is_directory(source, ec))
    throw UsageError("source '" + source + "' is not a directory; pass a folder of cat/dog images");
  fs::path root(source);
  std::string shown_root = root.generic_string();
  while (shown_root.size() > 1 && shown_root.back() == '/') shown_root.pop_back();
  std::vector<Candidate> out;
  for (const auto& entry : fs::directory_iterator(root)) {
    const fs::path& p = entry.path();
    if (hidden(p)) continue;
    std::string name = p.filename().string();
    if (entry.is_directory()) {
      int label = label_from_name(name);
      for (auto it = fs::recursive_directory_iterator(p); it != fs::recursive_directory_iterator();
           ++it) {
        if (hidden(it->path())) {
          if (it->is_directory()) it.disable_recursion_pending();
          continue;
        }
        if (!it->is_regular_file()) continue;
        std::string rel = fs::relative(it->path(), root).generic_string();
        out.push_back(classify(it->path(), shown_root + "/" + rel, label, name));
      }
    } else if (entry.is_regular_file()) {
      out.push_back(classify(p, shown_root + "/" + name, -1, ""));
    }
  }
  std::sort(out.begin(), out.end(),
            [](const Candidate& a, const Candidate& b) { return a.path < b.path; });
  return out;
}

std::string validate_image_bytes(const std::string& bytes, int min_size) {
  RgbImage rgb;
  try {
    rgb = decode_rgb(bytes);
  } catch (const DataError& e) {
    return e.what();
  }
  if (rgb.width() < min_size || rgb.height() < min_size)
    return "too small: " + std::to_string(rgb.width()) + "x" + std::to_string(rgb.height()) +
           " (minimum " + std::to_string(min_size) + "x" + std::to_string(min_size) + ")";
  return "";
}

void stratified_split(std::vector<Sample> samples, const std::vector<double>& fractions,
                      std::uint64_t seed, std::vector<Sample> out[3]) {
  for (int s = 0; s < 3; ++s) out[s].clear();
  std::sort(samples.begin(), samples.end(),
            [](const Sample& a, const Sample& b) { return a.path < b.path; });
  for (int label = 0; label < static_cast<int>(class_names().size()); ++label) {
    std::vector<Sample> group;
    for (const auto& s : samples)
      if (s.label == label) group.push_back(s);
    std::vector<std::size_t> order =
        shuffled_indices(group.size(), mix_seed(seed, static_cast<std::uint64_t>(label)));
    std::size_t n = group.size();
    auto n_train = static_cast<std::size_t>(std::floor(n * fractions[0] + 0.5));
    auto n_val =
        std::min(n - n_train, static_cast<std::size_t>(std::floor(n * fractions[1] + 0.5)));
    for (std::size_t i = 0; i < n; ++i)
      out[i < n_train ? 0 : i < n_train + n_val ? 1 : 2].push_back(group[order[i]]);
  }
  for (int s = 0; s < 3; ++s)
    std::sort(out[s].begin(), out[s].end(),
              [](const Sample& a, const Sample& b) { return a.path < b.path; });
}

namespace {

// Reads, hashes and validates every candidate on `threads` threads.
std::vector<Checked> check_all(const std::vector<Candidate>& candidates, int min_size,
                               int threads) {
  std::vector<Checked> checked(candidates.size());
  Progress progress("decode", candidates.size());
  parallel_for(0, candidates.size(), threads, [&](std::size_t i) {
    Checked& c = checked[i];
    if (!candidates[i].reject.empty()) {
      c.reason = candidates[i].reject;
    } else {
      try {
        std::string bytes = read_image_bytes(candidates[i].path);
        c.size = bytes.size();
        c.hash = fnv1a64(bytes);
        c.reason = validate_image_bytes(bytes, min_size);
      } catch (const Error& e) {
        c.reason = e.what();
      }
    }
    progress.advance();
  });
  progress.finish();
  return checked;
}

// Keeps the usable files, each picture once: candidates are sorted by path,
// so the first copy is kept; equal hashes are confirmed byte for byte.
std::vector<Sample> keep_unique(const std::vector<Candidate>& candidates,
                                const std::vector<Checked>& checked, PrepareResult& result) {
  std::map<std::pair<std::uint64_t, std::size_t>, std::vector<std::size_t>> seen;
  std::vector<Sample> accepted;
  for (std::size_t i = 0; i < candidates.size(); ++i) {
    if (!checked[i].reason.empty()) {
      result.rejected.push_back({candidates[i].path, checked[i].reason});
      continue;
    }
    auto& group = seen[{checked[i].hash, checked[i].size}];
    const Candidate* original = nullptr;
    if (!group.empty()) {
      std::string mine = read_file(candidates[i].path);
      for (std::size_t j : group)
        if (read_file(candidates[j].path) == mine) {
          original = &candidates[j];
          break;
        }
    }
    if (original) {
      result.duplicates.push_back(
          {candidates[i].path, original->path, original->label != candidates[i].label});
      continue;
    }
    group.push_back(i);
    accepted.push_back({candidates[i].path, candidates[i].label});
  }
  return accepted;
}

}  // namespace

std::vector<std::string> read_exclusion_list(const std::string& path) {
  std::string text;
  try {
    text = read_file(path);
  } catch (const IoError& e) {
    throw UsageError(std::string(e.what()) + "; --exclude names a list of files to leave out");
  }
  std::vector<std::string> entries;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) {
    line = trim(line.substr(0, line.find('#')));
    if (!line.empty()) entries.push_back(line);
  }
  return entries;
}

namespace {

// Takes the listed files out of the splits; what each entry matched, or not.
void apply_exclusions(const PrepareParams& params, PrepareResult& result) {
  std::vector<std::string> entries = read_exclusion_list(params.exclude);
  std::string root = fs::path(params.source).generic_string();
  while (root.size() > 1 && root.back() == '/') root.pop_back();
  std::vector<bool> used(entries.size(), false);
  auto listed = [&](const std::string& path) {
    std::string name = fs::path(path).filename().string();
    std::string rel = path.rfind(root + "/", 0) == 0 ? path.substr(root.size() + 1) : path;
    bool hit = false;
    for (std::size_t i = 0; i < entries.size(); ++i)
      if (entries[i] == (entries[i].find('/') == std::string::npos ? name : rel))
        used[i] = hit = true;
    return hit;
  };
  for (auto& split : result.splits) {
    auto out = std::remove_if(split.begin(), split.end(), [&](const Sample& s) {
      if (!listed(s.path)) return false;
      result.excluded.push_back(s.path);
      return true;
    });
    split.erase(out, split.end());
  }
  std::sort(result.excluded.begin(), result.excluded.end());
  for (std::size_t i = 0; i < entries.size(); ++i)
    if (!used[i]) result.unmatched.push_back(entries[i]);
}

}  // namespace

PrepareResult run_prepare(const PrepareParams& params) {
  double sum = params.split[0] + params.split[1] + params.split[2];
  if (std::fabs(sum - 1.0) > 1e-6)
    throw UsageError("split fractions must add up to 1 (got " + std::to_string(sum) + ")");
  auto start = std::chrono::steady_clock::now();
  PrepareResult result;
  std::vector<Candidate> candidates = scan_source(params.source);
  result.found = candidates.size();
  if (candidates.empty())
    throw DataError("no files found in '" + params.source +
                    "'; expected cat.N.jpg/dog.N.jpg or cat/ and dog/ folders");
  int threads = params.threads > 0 ? params.threads : hardware_threads();
  std::vector<Checked> checked = check_all(candidates, params.min_size, threads);
  std::vector<Sample> accepted = keep_unique(candidates, checked, result);
  stratified_split(accepted, params.split, static_cast<std::uint64_t>(params.seed), result.splits);
  if (!params.exclude.empty()) apply_exclusions(params, result);
  result.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return result;
}

void write_prepare_outputs(const PrepareParams& params, const PrepareResult& result) {
  static const char* k_split_names[3] = {"train", "val", "test"};
  make_dirs(params.output);
  nlohmann::ordered_json counts;
  nlohmann::ordered_json metrics;
  std::size_t accepted = 0;
  for (int s = 0; s < 3; ++s) {
    write_file_atomic(params.output + "/" + k_split_names[s] + ".csv",
                      format_manifest(relative_to(result.splits[s], params.output)));
    nlohmann::ordered_json per_class;
    for (std::size_t c = 0; c < class_names().size(); ++c) per_class[class_names()[c]] = 0;
    for (const auto& sample : result.splits[s])
      per_class[class_names()[sample.label]] =
          per_class[class_names()[sample.label]].get<int>() + 1;
    per_class["total"] = result.splits[s].size();
    counts[k_split_names[s]] = per_class;
    metrics[k_split_names[s]] = result.splits[s].size();
    accepted += result.splits[s].size();
  }
  nlohmann::ordered_json report;
  report["source"] = params.source;
  report["seed"] = params.seed;
  report["split"] = params.split;
  report["min_size"] = params.min_size;
  report["found"] = result.found;
  report["accepted"] = accepted;
  report["counts"] = counts;
  report["exclude"] = params.exclude;
  report["excluded"] = result.excluded;
  report["exclude_unmatched"] = result.unmatched;
  report["rejected"] = nlohmann::ordered_json::array();
  for (const auto& r : result.rejected)
    report["rejected"].push_back({{"path", r.path}, {"reason", r.reason}});
  report["duplicates"] = nlohmann::ordered_json::array();
  for (const auto& d : result.duplicates)
    report["duplicates"].push_back(
        {{"path", d.path}, {"duplicate_of", d.duplicate_of}, {"label_conflict", d.label_conflict}});
  // File names are bytes: one that is not UTF-8 is reported with U+FFFD in its place.
  const auto replace = nlohmann::ordered_json::error_handler_t::replace;
  write_file_atomic(params.output + "/report.json", report.dump(2, ' ', false, replace) + "\n");

  nlohmann::ordered_json m;
  m["found"] = result.found;
  m["accepted"] = accepted;
  m["rejected"] = result.rejected.size();
  m["duplicates"] = result.duplicates.size();
  for (auto& [k, v] : metrics.items()) m[k] = v;
  write_file_atomic(params.output + "/metrics.json", m.dump(2) + "\n");
}

}  // namespace cd
