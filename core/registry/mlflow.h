// A client of an MLflow tracking server's REST API, and its Model Registry on
// top: registered models, their versions and aliases, and model files moved
// through the server's artifact proxy (`mlflow server --serve-artifacts`, the
// default since MLflow 2). With MLFLOW_TRACKING_TOKEN set, every request
// carries it as a Bearer token. Errors are RegistryErrors that name the
// server, the call and MLflow's own error code.
#pragma once

#include <cstddef>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "util/errors.h"

namespace cd::registry {

class RegistryError : public IoError {
 public:
  RegistryError(const std::string& message, int status, std::string error_code)
      : IoError(message), m_status(status), m_error_code(std::move(error_code)) {}
  int status() const { return m_status; }  // HTTP status; 0 when no answer came
  const std::string& error_code() const { return m_error_code; }  // e.g. RESOURCE_DOES_NOT_EXIST

 private:
  int m_status;
  std::string m_error_code;
};

class MlflowClient {
 public:
  // tracking_uri: http(s)://host[:port][/prefix]; anything else is a UsageError.
  explicit MlflowClient(const std::string& tracking_uri, double timeout_s = 10);
  ~MlflowClient();
  // MLFLOW_TRACKING_URI, or nullopt when it is unset.
  static std::optional<std::string> uri_from_env();

  // route: under /api/2.0/mlflow, e.g. "/registered-models/get?name=catdog".
  nlohmann::json get(const std::string& route);
  nlohmann::json post(const std::string& route, const nlohmann::json& body);
  nlohmann::json del(const std::string& route, const nlohmann::json& body);
  // path: under the artifact proxy, e.g. "1/RUN/artifacts/model/model.cdm".
  void put_artifact(const std::string& path, const std::string& bytes);
  std::string get_artifact(const std::string& path, std::size_t max_bytes);
  const std::string& uri() const { return m_uri; }

 private:
  struct Impl;
  std::unique_ptr<Impl> m_impl;
  std::string m_uri;
};

// Percent-encodes a query value (RFC 3986's unreserved characters stay).
std::string query_escape(const std::string& value);

struct ModelVersion {
  std::string name, version, source, run_id, status;
  std::map<std::string, std::string> tags;
  std::vector<std::string> aliases;
};

// models:/NAME@ALIAS or models:/NAME/VERSION, as MLflow writes them.
struct ModelUri {
  std::string name, alias, version;
  std::string text() const;
};
std::optional<ModelUri> parse_model_uri(const std::string& text);  // nullopt: not models:/...
                                                                   // UsageError: malformed

// The tag names catdog puts on the versions it registers.
inline constexpr const char* k_tag_model_version = "catdog.model_version";  // the file's hash
inline constexpr const char* k_tag_data = "catdog.data_fingerprint";
inline constexpr const char* k_tag_commit = "catdog.git_commit";
inline constexpr const char* k_tag_architecture = "catdog.architecture";
inline constexpr const char* k_test_prefix = "test_";  // test_accuracy, test_log_loss, ...

void ensure_registered_model(MlflowClient& client, const std::string& name);
ModelVersion create_version(MlflowClient& client, const std::string& name,
                            const std::string& source, const std::string& run_id,
                            const std::map<std::string, std::string>& tags);
void set_version_tag(MlflowClient& client, const std::string& name, const std::string& version,
                     const std::string& key, const std::string& value);
std::vector<ModelVersion> list_versions(MlflowClient& client, const std::string& name);
ModelVersion get_version(MlflowClient& client, const std::string& name, const std::string& version);
// Throws RegistryError (404, RESOURCE_DOES_NOT_EXIST) when the alias is unset.
ModelVersion version_by_alias(MlflowClient& client, const std::string& name,
                              const std::string& alias);
ModelVersion resolve(MlflowClient& client, const ModelUri& uri);
void set_alias(MlflowClient& client, const std::string& name, const std::string& alias,
               const std::string& version);

// The artifact proxy path of a version's source (mlflow-artifacts:/PATH);
// a UsageError for sources the server does not proxy.
std::string artifact_path(const std::string& source);

// The tags catdog registers a model file with: its hash, architecture, git
// commit and data fingerprint, and test metrics (metrics.json of cd-eval)
// when given.
std::map<std::string, std::string> model_tags(const std::string& model_bytes,
                                              const nlohmann::json* test_metrics);

// Downloads a version's model file and checks it against the hash it was
// registered with; a RegistryError on a mismatch.
std::string download_model(MlflowClient& client, const ModelVersion& version,
                           std::size_t max_bytes);

}  // namespace cd::registry
