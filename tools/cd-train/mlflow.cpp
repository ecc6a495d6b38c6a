#include "cd-train/mlflow.h"

#include <httplib.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cstdlib>
#include <nlohmann/json.hpp>

#include <spdlog/spdlog.h>

#include "registry/mlflow.h"
#include "util/atomic_file.h"
#include "util/strings.h"

namespace cd {

namespace {

using json = nlohmann::json;

long long epoch_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// MLflow's log-batch takes at most 100 params per call.
constexpr std::size_t k_params_per_batch = 100;

// The first failure logs one warning and switches tracking off for the rest
// of the run, so a dead server costs at most one connection timeout.
class MlflowObserver : public TrainObserver {
 public:
  MlflowObserver(std::string base, std::string prefix, std::string experiment, Settings settings,
                 std::string register_model)
      : m_base(std::move(base)),
        m_prefix(std::move(prefix)),
        m_experiment(std::move(experiment)),
        m_register(std::move(register_model)),
        m_settings(std::move(settings)),
        m_client(m_base) {
    if (const char* token = std::getenv("MLFLOW_TRACKING_TOKEN"); token && *token)
      m_client.set_bearer_token_auth(token);
    m_client.set_connection_timeout(2, 0);
    m_client.set_read_timeout(10, 0);
    m_client.set_write_timeout(10, 0);
  }

  void on_start(const RunStart& start) override {
    std::string experiment_id = find_or_create_experiment();
    if (experiment_id.empty()) return;
    json tag_list = json::array();
    for (const auto& [k, v] : start.tags) tag_list.push_back({{"key", k}, {"value", v}});
    tag_list.push_back({{"key", "mlflow.source.name"}, {"value", "cd-train"}});
    json run =
        call("POST", "/runs/create",
             {{"experiment_id", experiment_id}, {"start_time", epoch_ms()}, {"tags", tag_list}});
    if (run.is_null()) return;
    m_run_id = run["run"]["info"]["run_id"].get<std::string>();
    m_artifact_uri = run["run"]["info"].value("artifact_uri", "");
    Settings params = m_settings;
    params.insert(params.end(), start.params.begin(), start.params.end());
    for (std::size_t i = 0; i < params.size(); i += k_params_per_batch) {
      json param_list = json::array();
      for (std::size_t j = i; j < std::min(params.size(), i + k_params_per_batch); ++j)
        param_list.push_back({{"key", params[j].first}, {"value", params[j].second}});
      call("POST", "/runs/log-batch", {{"run_id", m_run_id}, {"params", param_list}});
    }
    if (!m_run_id.empty())
      spdlog::info("MLflow: run {} in experiment '{}' at {}", m_run_id, m_experiment, m_base);
  }

  void on_epoch(const EpochRecord& r, const std::vector<EpochRecord>&) override {
    if (m_run_id.empty()) return;
    json list = json::array();
    long long ts = epoch_ms();
    const std::pair<const char*, double> metrics[] = {{"train_loss", r.train_loss},
                                                      {"train_accuracy", r.train_acc},
                                                      {"val_loss", r.val_loss},
                                                      {"val_accuracy", r.val_acc},
                                                      {"lr", r.lr}};
    for (const auto& [k, v] : metrics)
      list.push_back({{"key", k}, {"value", v}, {"timestamp", ts}, {"step", r.epoch - 1}});
    call("POST", "/runs/log-batch", {{"run_id", m_run_id}, {"metrics", list}});
  }

  void on_finish(const TrainSummary* summary) override {
    if (m_run_id.empty()) return;
    if (summary && !summary->model_path.empty()) {
      std::string source = upload_artifact(summary->model_path);
      if (!source.empty() && !m_register.empty()) register_version(summary->model_path, source);
    }
    call("POST", "/runs/update",
         {{"run_id", m_run_id},
          {"status", summary ? "FINISHED" : "FAILED"},
          {"end_time", epoch_ms()}});
  }

 private:
  std::string find_or_create_experiment() {
    json found = call(
        "GET", "/experiments/get-by-name?experiment_name=" + registry::query_escape(m_experiment),
        {}, 404);
    if (m_disabled) return "";
    if (!found.is_null() && found.contains("experiment"))
      return found["experiment"]["experiment_id"].get<std::string>();
    json created = call("POST", "/experiments/create", {{"name", m_experiment}});
    return created.is_null() ? "" : created["experiment_id"].get<std::string>();
  }

  // A new version of the registered model, whose source is the uploaded file.
  // Like the rest of tracking, a failure costs a warning, not the run.
  void register_version(const std::string& path, const std::string& source) {
    try {
      registry::MlflowClient client(m_base + m_prefix);
      registry::ensure_registered_model(client, m_register);
      auto tags = registry::model_tags(read_file(path), nullptr);
      auto v = registry::create_version(client, m_register, source, m_run_id, tags);
      spdlog::info("MLflow: registered the model as {} version {}", m_register, v.version);
    } catch (const std::exception& e) {
      spdlog::warn("MLflow: could not register the model as {}: {}", m_register, e.what());
    }
  }

  // Uploads through the server's artifact proxy (mlflow server --serve-artifacts,
  // the default since MLflow 2). Servers without it answer 404: not an error.
  // Returns the artifact's URI, or "" when it was not uploaded.
  std::string upload_artifact(const std::string& path) {
    const std::string scheme = "mlflow-artifacts:";
    if (!starts_with(m_artifact_uri, scheme)) {
      spdlog::info("MLflow: artifact store {} is not proxied by the server; model not uploaded",
                   m_artifact_uri);
      return "";
    }
    std::string rest = m_artifact_uri.substr(scheme.size());
    while (!rest.empty() && rest.front() == '/') rest.erase(0, 1);
    std::string name = path.substr(path.find_last_of('/') + 1);
    std::string url = m_prefix + "/api/2.0/mlflow-artifacts/artifacts/" + rest + "/model/" + name;
    std::string body;
    try {
      body = read_file(path);
    } catch (const std::exception& e) {
      return "";
    }
    auto res = m_client.Put(url.c_str(), body, "application/octet-stream");
    if (!res || res->status >= 300) {
      spdlog::warn("MLflow: could not upload {} as an artifact ({})", name,
                   res ? "HTTP " + std::to_string(res->status) : httplib::to_string(res.error()));
      return "";
    }
    return m_artifact_uri + "/model/" + name;
  }

  json call(const std::string& method, const std::string& route, const json& body,
            int tolerated = 0) {
    if (m_disabled) return nullptr;
    std::string url = m_prefix + "/api/2.0/mlflow" + route;
    httplib::Result res = method == "GET"
                              ? m_client.Get(url.c_str())
                              : m_client.Post(url.c_str(), body.dump(), "application/json");
    if (res && res->status == tolerated) return nullptr;
    if (!res || res->status >= 300) {
      std::string why = res ? "HTTP " + std::to_string(res->status) + " " + res->body.substr(0, 200)
                            : httplib::to_string(res.error());
      spdlog::warn("MLflow tracking at {} failed ({}); training goes on without tracking", m_base,
                   why);
      m_disabled = true;
      return nullptr;
    }
    try {
      return json::parse(res->body);
    } catch (const std::exception&) {
      return json::object();
    }
  }

  std::string m_base, m_prefix, m_experiment, m_register;
  Settings m_settings;
  httplib::Client m_client;
  std::string m_run_id, m_artifact_uri;
  bool m_disabled = false;
};

}  // namespace

std::unique_ptr<TrainObserver> make_mlflow_observer(const std::string& experiment,
                                                    Settings settings,
                                                    const std::string& register_model) {
  const char* uri = std::getenv("MLFLOW_TRACKING_URI");
  if (!uri || !*uri) return nullptr;
  return make_mlflow_observer(uri, experiment, std::move(settings), register_model);
}

std::unique_ptr<TrainObserver> make_mlflow_observer(const std::string& tracking_uri,
                                                    const std::string& experiment,
                                                    Settings settings,
                                                    const std::string& register_model) {
  std::string u = tracking_uri;
  if (!starts_with(u, "http://") && !starts_with(u, "https://")) {
    spdlog::warn("MLFLOW_TRACKING_URI={} is not an http(s) URL; tracking is off", u);
    return nullptr;
  }
  std::size_t host_start = u.find("://") + 3;
  std::size_t path_start = u.find('/', host_start);
  std::string base = path_start == std::string::npos ? u : u.substr(0, path_start);
  std::string prefix = path_start == std::string::npos ? "" : u.substr(path_start);
  while (!prefix.empty() && prefix.back() == '/') prefix.pop_back();
  return std::make_unique<MlflowObserver>(base, prefix, experiment, std::move(settings),
                                          register_model);
}

}  // namespace cd
