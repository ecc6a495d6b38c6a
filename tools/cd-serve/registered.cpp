#include "cd-serve/registered.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <filesystem>

#include "util/atomic_file.h"
#include "util/hash.h"

namespace cd::serve {

namespace {

// A model file is a few MB to a few hundred; anything past this is not one.
constexpr std::size_t k_max_model_bytes = std::size_t{2} << 30;

std::string tracking(const std::string& configured) {
  if (!configured.empty()) return configured;
  if (auto uri = registry::MlflowClient::uri_from_env()) return *uri;
  throw UsageError(
      "a models:/ model needs the tracking server: set MLFLOW_TRACKING_URI or --tracking-uri");
}

}  // namespace

std::string model_cache_dir(const std::string& configured) {
  if (!configured.empty()) return configured;
  if (const char* xdg = std::getenv("XDG_CACHE_HOME"); xdg && *xdg)
    return std::string(xdg) + "/catdog/models";
  if (const char* home = std::getenv("HOME"); home && *home)
    return std::string(home) + "/.cache/catdog/models";
  return "/tmp/catdog-models";
}

std::string fetch_registered(const registry::ModelUri& uri, const std::string& tracking_uri,
                             const std::string& cache_dir, Registered& out) {
  registry::MlflowClient client(tracking(tracking_uri));
  registry::ModelVersion v = registry::resolve(client, uri);
  // The cache file's name is made of what was checked, never of the server's
  // words: the name the URI gave, a version of digits, a hash of hex digits.
  auto all = [](const std::string& s, int (*is)(int)) {
    return !s.empty() && std::all_of(s.begin(), s.end(), [&](unsigned char c) { return is(c); });
  };
  if (!all(v.version, ::isdigit))
    throw registry::RegistryError(
        uri.text() + " resolved to version '" + v.version +
            "', which is not a number; is this an MLflow tracking server?",
        0, "");
  out = {uri.text(), uri.name, v.version, uri.alias, v.source};
  auto tag = v.tags.find(registry::k_tag_model_version);
  std::string hash = tag == v.tags.end() ? "" : tag->second;
  if (!hash.empty() && !all(hash, ::isxdigit))
    throw registry::RegistryError(uri.text() + " version " + v.version + " has a malformed " +
                                      registry::k_tag_model_version + " tag '" + hash + "'",
                                  0, "");
  if (hash.empty())
    spdlog::warn(
        "{} version {} has no {} tag (registered outside catdog): its file cannot be "
        "checked; register with cd-model or cd-train --register-model",
        uri.text(), v.version, registry::k_tag_model_version);
  std::string path =
      cache_dir + "/" + uri.name + "-" + v.version + (hash.empty() ? "" : "-" + hash) + ".cdm";
  std::error_code ec;
  if (!hash.empty() && std::filesystem::exists(path, ec)) {
    if (hex64(fnv1a64(read_file(path))).substr(0, 12) == hash) return path;  // cached and intact
  }
  std::string bytes = registry::download_model(client, v, k_max_model_bytes);
  std::filesystem::create_directories(cache_dir, ec);
  if (ec)
    throw IoError("cannot create the model cache " + cache_dir + ": " + ec.message() +
                  "; set --model-cache");
  write_file_atomic(path, bytes);
  return path;
}

std::string resolve_version(const registry::ModelUri& uri, const std::string& tracking_uri) {
  registry::MlflowClient client(tracking(tracking_uri), 5);
  return registry::resolve(client, uri).version;
}

}  // namespace cd::serve
