#include "cd-serve/registered.h"

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
  out = {uri.text(), v.name, v.version, uri.alias, v.source};
  auto tag = v.tags.find(registry::k_tag_model_version);
  std::string hash = tag == v.tags.end() ? "" : tag->second;
  std::string path =
      cache_dir + "/" + v.name + "-" + v.version + (hash.empty() ? "" : "-" + hash) + ".cdm";
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
