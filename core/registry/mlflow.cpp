#include "registry/mlflow.h"

#include <httplib.h>

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <limits>

#include "domain/model_file.h"
#include "util/hash.h"
#include "util/strings.h"

namespace cd::registry {

using json = nlohmann::json;

struct MlflowClient::Impl {
  std::string base, prefix, token;
  httplib::Client http;
  explicit Impl(const std::string& b) : base(b), http(b) {}

  httplib::Headers headers() const {
    httplib::Headers h;
    if (!token.empty()) h.emplace("Authorization", "Bearer " + token);
    return h;
  }

  [[noreturn]] void fail(const std::string& what, const httplib::Result& res) const {
    if (!res)
      throw RegistryError("MLflow at " + base + ": " + what + " failed (" +
                              httplib::to_string(res.error()) +
                              "); is the tracking server running at MLFLOW_TRACKING_URI?",
                          0, "");
    std::string code, message = res->body.substr(0, 300);
    auto body = json::parse(res->body, nullptr, false);
    if (body.is_object()) {
      code = body.value("error_code", "");
      message = body.value("message", message);
    }
    throw RegistryError("MLflow at " + base + ": " + what + ": HTTP " +
                            std::to_string(res->status) + (code.empty() ? "" : " " + code) + ": " +
                            message,
                        res->status, code);
  }

  json answer(const std::string& what, const httplib::Result& res) const {
    if (!res || res->status >= 300) fail(what, res);
    auto body = json::parse(res->body, nullptr, false);
    return body.is_discarded() ? json::object() : body;
  }
};

MlflowClient::MlflowClient(const std::string& tracking_uri, double timeout_s)
    : m_uri(tracking_uri) {
  if (!starts_with(tracking_uri, "http://") && !starts_with(tracking_uri, "https://"))
    throw UsageError("MLflow tracking URI '" + tracking_uri +
                     "' is not an http(s) URL; set MLFLOW_TRACKING_URI=http://HOST:PORT");
  std::size_t host_start = tracking_uri.find("://") + 3;
  std::size_t path_start = tracking_uri.find('/', host_start);
  std::string base =
      path_start == std::string::npos ? tracking_uri : tracking_uri.substr(0, path_start);
  m_impl = std::make_unique<Impl>(base);
  m_impl->prefix = path_start == std::string::npos ? "" : tracking_uri.substr(path_start);
  while (!m_impl->prefix.empty() && m_impl->prefix.back() == '/') m_impl->prefix.pop_back();
  if (const char* token = std::getenv("MLFLOW_TRACKING_TOKEN")) m_impl->token = token;
  auto whole = static_cast<time_t>(timeout_s);
  auto micro = static_cast<time_t>((timeout_s - static_cast<double>(whole)) * 1e6);
  m_impl->http.set_connection_timeout(std::min<time_t>(whole, 2), whole < 2 ? micro : 0);
  m_impl->http.set_read_timeout(whole, micro);
  m_impl->http.set_write_timeout(whole, micro);
}

MlflowClient::~MlflowClient() = default;

std::optional<std::string> MlflowClient::uri_from_env() {
  const char* uri = std::getenv("MLFLOW_TRACKING_URI");
  if (!uri || !*uri) return std::nullopt;
  return std::string(uri);
}

json MlflowClient::get(const std::string& route) {
  std::string url = m_impl->prefix + "/api/2.0/mlflow" + route;
  return m_impl->answer("GET " + route, m_impl->http.Get(url.c_str(), m_impl->headers()));
}

json MlflowClient::post(const std::string& route, const json& body) {
  std::string url = m_impl->prefix + "/api/2.0/mlflow" + route;
  return m_impl->answer("POST " + route, m_impl->http.Post(url.c_str(), m_impl->headers(),
                                                           body.dump(), "application/json"));
}

json MlflowClient::del(const std::string& route, const json& body) {
  std::string url = m_impl->prefix + "/api/2.0/mlflow" + route;
  return m_impl->answer("DELETE " + route, m_impl->http.Delete(url.c_str(), m_impl->headers(),
                                                               body.dump(), "application/json"));
}

void MlflowClient::put_artifact(const std::string& path, const std::string& bytes) {
  std::string url = m_impl->prefix + "/api/2.0/mlflow-artifacts/artifacts/" + path;
  m_impl->answer("upload of artifact " + path, m_impl->http.Put(url.c_str(), m_impl->headers(),
                                                                bytes, "application/octet-stream"));
}

std::string MlflowClient::get_artifact(const std::string& path, std::size_t max_bytes) {
  std::string url = m_impl->prefix + "/api/2.0/mlflow-artifacts/artifacts/" + path;
  std::string body;
  bool too_large = false;
  auto res = m_impl->http.Get(url.c_str(), m_impl->headers(), [&](const char* data, std::size_t n) {
    if (body.size() + n > max_bytes) {
      too_large = true;
      return false;
    }
    body.append(data, n);
    return true;
  });
  if (too_large)
    throw RegistryError("MLflow at " + m_impl->base + ": artifact " + path + " is over " +
                            std::to_string(max_bytes >> 20) + " MB",
                        0, "");
  if (!res || res->status >= 300) m_impl->fail("download of artifact " + path, res);
  return body;
}

std::string query_escape(const std::string& value) {
  static const char* k_hex = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : value) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += k_hex[c >> 4];
      out += k_hex[c & 15];
    }
  }
  return out;
}

std::string ModelUri::text() const {
  return "models:/" + name + (alias.empty() ? "/" + version : "@" + alias);
}

std::optional<ModelUri> parse_model_uri(const std::string& text) {
  const std::string scheme = "models:/";
  if (!starts_with(text, scheme)) return std::nullopt;
  std::string rest = text.substr(scheme.size());
  ModelUri uri;
  auto at = rest.find('@');
  auto slash = rest.find('/');
  if (at != std::string::npos) {
    uri.name = rest.substr(0, at);
    uri.alias = rest.substr(at + 1);
  } else if (slash != std::string::npos) {
    uri.name = rest.substr(0, slash);
    uri.version = rest.substr(slash + 1);
  }
  auto plain = [](const std::string& s) {
    return !s.empty() && s.find_first_of("/@?#") == std::string::npos;
  };
  if (!plain(uri.name) || !(plain(uri.alias) || plain(uri.version)))
    throw UsageError("model URI '" + text + "' is not models:/NAME@ALIAS or models:/NAME/VERSION");
  return uri;
}

namespace {

// The object under `key` of an answer, or a RegistryError naming it.
const json& object_at(const json& answer, const char* key) {
  if (answer.is_object())
    if (auto it = answer.find(key); it != answer.end() && it->is_object()) return *it;
  throw RegistryError(std::string("the tracking server's answer has no '") + key +
                          "' object; is this MLflow's REST API (2.x or later)?",
                      0, "");
}

// A field as text: MLflow sends strings, some registries numbers; anything
// else is absent.
std::string text_of(const json& j, const char* key) {
  auto it = j.find(key);
  if (it == j.end()) return "";
  if (it->is_string()) return it->get<std::string>();
  if (it->is_number_integer()) return std::to_string(it->get<long long>());
  return "";
}

ModelVersion to_version(const json& j) {
  if (!j.is_object())
    throw RegistryError("the tracking server answered a model version that is not a JSON object", 0,
                        "");
  ModelVersion v;
  v.name = text_of(j, "name");
  v.version = text_of(j, "version");
  v.source = text_of(j, "source");
  v.run_id = text_of(j, "run_id");
  v.status = text_of(j, "status");
  if (auto tags = j.find("tags"); tags != j.end() && tags->is_array())
    for (const auto& t : *tags)
      if (t.is_object()) v.tags[text_of(t, "key")] = text_of(t, "value");
  if (auto aliases = j.find("aliases"); aliases != j.end() && aliases->is_array())
    for (const auto& a : *aliases)
      v.aliases.push_back(a.is_string()   ? a.get<std::string>()
                          : a.is_object() ? text_of(a, "alias")
                                          : "");
  return v;
}

// Versions in numeric order; one that is not a number sorts last.
long long version_number(const std::string& version) {
  if (version.empty() || version.size() > 18 ||
      version.find_first_not_of("0123456789") != std::string::npos)
    return std::numeric_limits<long long>::max();
  return std::stoll(version);
}

}  // namespace

void ensure_registered_model(MlflowClient& client, const std::string& name) {
  try {
    client.post("/registered-models/create", {{"name", name}});
  } catch (const RegistryError& e) {
    if (e.error_code() != "RESOURCE_ALREADY_EXISTS") throw;
  }
}

ModelVersion create_version(MlflowClient& client, const std::string& name,
                            const std::string& source, const std::string& run_id,
                            const std::map<std::string, std::string>& tags) {
  json tag_list = json::array();
  for (const auto& [k, v] : tags) tag_list.push_back({{"key", k}, {"value", v}});
  json body{{"name", name}, {"source", source}, {"tags", tag_list}};
  if (!run_id.empty()) body["run_id"] = run_id;
  return to_version(object_at(client.post("/model-versions/create", body), "model_version"));
}

void set_version_tag(MlflowClient& client, const std::string& name, const std::string& version,
                     const std::string& key, const std::string& value) {
  client.post("/model-versions/set-tag",
              {{"name", name}, {"version", version}, {"key", key}, {"value", value}});
}

std::vector<ModelVersion> list_versions(MlflowClient& client, const std::string& name) {
  std::string filter = "name='" + name + "'";
  std::vector<ModelVersion> out;
  std::string page;  // the search answers in pages of at most max_results
  do {
    json found =
        client.get("/model-versions/search?max_results=1000&filter=" + query_escape(filter) +
                   (page.empty() ? "" : "&page_token=" + query_escape(page)));
    if (auto versions = found.find("model_versions");
        versions != found.end() && versions->is_array())
      for (const auto& j : *versions) out.push_back(to_version(j));
    page = text_of(found, "next_page_token");
  } while (!page.empty());
  std::sort(out.begin(), out.end(), [](const ModelVersion& a, const ModelVersion& b) {
    return version_number(a.version) < version_number(b.version);
  });
  // Search results leave the aliases out; the registered model lists them.
  const json model = client.get("/registered-models/get?name=" + query_escape(name));
  const json& registered = object_at(model, "registered_model");
  if (auto aliases = registered.find("aliases"); aliases != registered.end() && aliases->is_array())
    for (const auto& a : *aliases)
      if (a.is_object())
        for (auto& v : out)
          if (v.version == text_of(a, "version")) v.aliases.push_back(text_of(a, "alias"));
  return out;
}

ModelVersion get_version(MlflowClient& client, const std::string& name,
                         const std::string& version) {
  return to_version(object_at(client.get("/model-versions/get?name=" + query_escape(name) +
                                         "&version=" + query_escape(version)),
                              "model_version"));
}

ModelVersion version_by_alias(MlflowClient& client, const std::string& name,
                              const std::string& alias) {
  return to_version(object_at(client.get("/registered-models/alias?name=" + query_escape(name) +
                                         "&alias=" + query_escape(alias)),
                              "model_version"));
}

ModelVersion resolve(MlflowClient& client, const ModelUri& uri) {
  return uri.alias.empty() ? get_version(client, uri.name, uri.version)
                           : version_by_alias(client, uri.name, uri.alias);
}

void set_alias(MlflowClient& client, const std::string& name, const std::string& alias,
               const std::string& version) {
  client.post("/registered-models/alias", {{"name", name}, {"alias", alias}, {"version", version}});
}

std::string artifact_path(const std::string& source) {
  const std::string scheme = "mlflow-artifacts:";
  if (!starts_with(source, scheme))
    throw UsageError("model source '" + source +
                     "' is not in the tracking server's artifact proxy (mlflow-artifacts:/...); "
                     "start mlflow server with --serve-artifacts");
  std::string rest = source.substr(scheme.size());
  while (!rest.empty() && rest.front() == '/') rest.erase(0, 1);
  return rest;
}

std::map<std::string, std::string> model_tags(const std::string& model_bytes,
                                              const json* test_metrics) {
  FileParts parts = unpack_file(model_bytes, "the model file");
  ModelMeta meta = meta_from_json(parts.meta, "the model file");
  std::map<std::string, std::string> tags{
      {k_tag_model_version, hex64(fnv1a64(model_bytes)).substr(0, 12)},
      {k_tag_architecture, meta.architecture},
      {k_tag_commit, meta.git_commit},
      {k_tag_data, meta.data_fingerprint}};
  if (test_metrics)
    for (const auto& [k, v] : test_metrics->items())
      if (v.is_number()) tags[k_test_prefix + k] = v.dump();
  return tags;
}

std::string download_model(MlflowClient& client, const ModelVersion& version,
                           std::size_t max_bytes) {
  std::string bytes = client.get_artifact(artifact_path(version.source), max_bytes);
  auto expected = version.tags.find(k_tag_model_version);
  std::string got = hex64(fnv1a64(bytes)).substr(0, 12);
  if (expected != version.tags.end() && expected->second != got)
    throw RegistryError("model " + version.name + " version " + version.version +
                            ": the downloaded file hashes to " + got +
                            ", but it was registered as " + expected->second +
                            " (corrupt or replaced in the artifact store)",
                        0, "");
  return bytes;
}

}  // namespace cd::registry
