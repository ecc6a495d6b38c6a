// Serving a model from MLflow's Model Registry: --model models:/NAME@ALIAS
// (or models:/NAME/VERSION) is resolved through the tracking server's REST
// API, and the version's file is downloaded through its artifact proxy into
// a local cache, checked against the hash it was registered with.
#pragma once

#include <string>

#include "registry/mlflow.h"

namespace cd::serve {

struct Registered {
  std::string uri;  // as given: models:/NAME@ALIAS
  std::string name, version, alias, source;
};

// Where a registered version's file is kept: the folder given, or
// $XDG_CACHE_HOME/catdog/models (~/.cache/catdog/models).
std::string model_cache_dir(const std::string& configured);

// Resolves `uri` and returns the local path of its file, downloading it when
// the cache does not hold it yet. Throws RegistryError, UsageError or IoError;
// nothing in the cache is replaced by a file that failed its check.
std::string fetch_registered(const registry::ModelUri& uri, const std::string& tracking_uri,
                             const std::string& cache_dir, Registered& out);

// The version `uri` resolves to now (for --registry-poll-s).
std::string resolve_version(const registry::ModelUri& uri, const std::string& tracking_uri);

}  // namespace cd::serve
