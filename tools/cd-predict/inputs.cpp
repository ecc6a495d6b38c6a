#include "cd-predict/inputs.h"

#include <algorithm>
#include <filesystem>
#include <istream>

#include "domain/image.h"
#include "domain/manifest.h"
#include "util/errors.h"
#include "util/strings.h"

namespace cd {

namespace fs = std::filesystem;

namespace {

void add_path(const std::string& arg, std::vector<Prediction>& out) {
  std::error_code ec;
  fs::file_status st = fs::status(arg, ec);
  if (!fs::exists(st)) {
    // ENOENT, or what kept us from looking (a folder without search permission)
    bool missing = !ec || ec == std::errc::no_such_file_or_directory;
    out.push_back({arg, missing ? "no such file or directory" : ec.message()});
    return;
  }
  if (!fs::is_directory(st)) {
    if (ends_with(to_lower(arg), ".csv")) {  // a manifest: its rows' images, in its order
      try {
        for (const auto& sample : read_manifest(arg)) out.push_back({sample.path, ""});
      } catch (const Error& e) {
        out.push_back({arg, e.what()});
      }
      return;
    }
    out.push_back({arg, ""});
    return;
  }
  std::vector<std::string> files;
  fs::directory_iterator probe(arg, ec);  // a folder we may not list is an error, not "empty"
  if (ec) {
    out.push_back({arg, "cannot read directory: " + ec.message()});
    return;
  }
  for (auto it =
           fs::recursive_directory_iterator(arg, fs::directory_options::skip_permission_denied, ec);
       it != fs::recursive_directory_iterator(); it.increment(ec)) {
    if (ec) break;
    if (it->is_regular_file(ec) && has_image_extension(it->path().string()))
      files.push_back(it->path().string());
  }
  std::sort(files.begin(), files.end());
  if (files.empty()) out.push_back({arg, "directory holds no images (jpg, jpeg, png, bmp, webp)"});
  for (auto& f : files) out.push_back({f, ""});
}

}  // namespace

std::vector<Prediction> expand_inputs(const std::vector<std::string>& args, std::istream& in) {
  std::vector<Prediction> out;
  for (const auto& arg : args) {
    if (arg != "-") {
      add_path(arg, out);
      continue;
    }
    std::string line;
    while (std::getline(in, line)) {
      if (!line.empty() && line.back() == '\r') line.pop_back();
      if (!line.empty()) add_path(line, out);
    }
  }
  return out;
}

namespace {

std::size_t parse_count(const std::string& text, const std::string& what,
                        const std::string& whole) {
  std::size_t used = 0;
  unsigned long long n = 0;
  try {
    n = std::stoull(text, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  if (text.empty() || used != text.size() || text[0] == '-')
    throw UsageError("--shard '" + whole + "': " + what +
                     " is not a whole number; use I/N, e.g. 0/4");
  return static_cast<std::size_t>(n);
}

}  // namespace

Shard parse_shard(const std::string& text, const char* job_completion_index) {
  Shard s;
  auto slash = text.find('/');
  std::string env = job_completion_index ? job_completion_index : "";
  if (slash == std::string::npos) {
    s.count = parse_count(text, "the shard count", text);
    if (env.empty())
      throw UsageError("--shard " + text +
                       " takes its index from JOB_COMPLETION_INDEX, which is not set; use I/N");
    s.index = parse_count(env, "JOB_COMPLETION_INDEX", text);
  } else {
    s.index = parse_count(text.substr(0, slash), "the shard index", text);
    s.count = parse_count(text.substr(slash + 1), "the shard count", text);
    if (!env.empty() && parse_count(env, "JOB_COMPLETION_INDEX", text) != s.index)
      throw UsageError("--shard " + text + " disagrees with JOB_COMPLETION_INDEX=" + env +
                       "; pass --shard " + std::to_string(s.count) + " to follow the job");
  }
  if (s.count == 0) throw UsageError("--shard '" + text + "': the shard count must be at least 1");
  if (s.index >= s.count)
    throw UsageError("--shard '" + text + "': the index must be below the count (0-based)");
  return s;
}

std::vector<Prediction> take_shard(std::vector<Prediction> items, const Shard& shard) {
  std::size_t n = items.size();
  std::size_t begin = n * shard.index / shard.count, end = n * (shard.index + 1) / shard.count;
  return std::vector<Prediction>(std::make_move_iterator(items.begin() + begin),
                                 std::make_move_iterator(items.begin() + end));
}

}  // namespace cd
