#include "cd-predict/inputs.h"

#include <algorithm>
#include <filesystem>
#include <istream>

#include "domain/image.h"

namespace cd {

namespace fs = std::filesystem;

namespace {

void add_path(const std::string& arg, std::vector<Prediction>& out) {
  std::error_code ec;
  fs::file_status st = fs::status(arg, ec);
  if (!fs::exists(st)) {
    out.push_back({arg, "no such file or directory"});
    return;
  }
  if (!fs::is_directory(st)) {
    out.push_back({arg, ""});
    return;
  }
  std::vector<std::string> files;
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

}  // namespace cd
