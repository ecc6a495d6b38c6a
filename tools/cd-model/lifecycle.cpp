#include "cd-model/lifecycle.h"

#include <chrono>
#include <cmath>
#include <cstdio>
#include <optional>

#include "util/atomic_file.h"
#include "util/errors.h"
#include "util/strings.h"

namespace cd::model {

namespace {

using json = nlohmann::json;
namespace reg = cd::registry;

long long epoch_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::string experiment_id(reg::MlflowClient& client, const std::string& name) {
  try {
    return client.get("/experiments/get-by-name?experiment_name=" + reg::query_escape(name))
        .at("experiment")
        .at("experiment_id")
        .get<std::string>();
  } catch (const reg::RegistryError& e) {
    if (e.error_code() != "RESOURCE_DOES_NOT_EXIST") throw;
  }
  return client.post("/experiments/create", {{"name", name}})
      .at("experiment_id")
      .get<std::string>();
}

std::optional<double> tag_number(const reg::ModelVersion& v, const std::string& metric) {
  auto it = v.tags.find(reg::k_test_prefix + metric);
  if (it == v.tags.end()) return std::nullopt;
  try {
    return std::stod(it->second);
  } catch (const std::exception&) {
    return std::nullopt;
  }
}

std::string fixed4(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.4f", v);
  return buf;
}

std::string metric_text(const reg::ModelVersion& v) {
  auto acc = tag_number(v, "accuracy");
  auto loss = tag_number(v, "log_loss");
  return "version " + v.version + " (test accuracy " + (acc ? fixed4(*acc) : "unknown") +
         ", log loss " + (loss ? fixed4(*loss) : "unknown") + ")";
}

}  // namespace

reg::ModelVersion register_file(reg::MlflowClient& client, const RegisterRequest& r) {
  std::string bytes = read_file(r.model_path);
  json metrics;
  if (!r.metrics_path.empty()) metrics = json::parse(read_file(r.metrics_path), nullptr, false);
  if (!r.metrics_path.empty() && !metrics.is_object())
    throw DataError(r.metrics_path + " is not cd-eval's metrics.json (a JSON object)");
  auto tags = reg::model_tags(bytes, metrics.is_object() ? &metrics : nullptr);

  // A run of its own holds the file, so the version's source is in the artifact proxy.
  std::string experiment = experiment_id(client, r.experiment);
  json tag_list = json::array({{{"key", "mlflow.source.name"}, {"value", "cd-model register"}},
                               {{"key", "mlflow.runName"}, {"value", "register " + r.name}}});
  json run = client.post("/runs/create", {{"experiment_id", experiment},
                                          {"start_time", epoch_ms()},
                                          {"tags", tag_list}})["run"]["info"];
  std::string run_id = run.at("run_id").get<std::string>();
  std::string source = run.value("artifact_uri", "") + "/model/model.cdm";
  client.put_artifact(reg::artifact_path(source), bytes);
  json metric_list = json::array();
  for (const auto& [k, v] : tags)
    if (starts_with(k, reg::k_test_prefix))
      metric_list.push_back(
          {{"key", k}, {"value", std::stod(v)}, {"timestamp", epoch_ms()}, {"step", 0}});
  if (!metric_list.empty())
    client.post("/runs/log-batch", {{"run_id", run_id}, {"metrics", metric_list}});
  client.post("/runs/update",
              {{"run_id", run_id}, {"status", "FINISHED"}, {"end_time", epoch_ms()}});
  reg::ensure_registered_model(client, r.name);
  return reg::create_version(client, r.name, source, run_id, tags);
}

std::string previous_tag(const std::string& alias) { return "catdog.previous." + alias; }

Promotion promote(reg::MlflowClient& client, const std::string& name, const std::string& version,
                  const std::string& alias, bool force) {
  reg::ModelVersion candidate = reg::get_version(client, name, version);
  std::optional<reg::ModelVersion> holder;
  try {
    holder = reg::version_by_alias(client, name, alias);
  } catch (const reg::RegistryError& e) {
    if (e.status() != 404 && e.error_code() != "RESOURCE_DOES_NOT_EXIST" &&
        e.error_code() != "INVALID_PARAMETER_VALUE")
      throw;
  }
  Promotion p;
  if (holder && holder->version == candidate.version) {
    p.reason = "version " + version + " already holds @" + alias;
    p.previous = holder->version;
    return p;
  }
  if (holder && !force) {
    auto acc = tag_number(candidate, "accuracy"), held_acc = tag_number(*holder, "accuracy");
    auto loss = tag_number(candidate, "log_loss"), held_loss = tag_number(*holder, "log_loss");
    std::string versus =
        metric_text(candidate) + " against @" + alias + "'s " + metric_text(*holder);
    if (!acc || !held_acc) {
      p.reason = "not promoted: no test metrics to compare, " + versus +
                 "; register with --metrics eval/metrics.json, or --force";
      return p;
    }
    bool worse = *acc < *held_acc || (*acc == *held_acc && loss && held_loss && *loss > *held_loss);
    if (worse) {
      p.reason = "not promoted: " + versus + " is worse; --force promotes it anyway";
      return p;
    }
    p.reason = "promoted: " + versus + " is no worse";
  } else {
    p.reason = holder ? "promoted by --force over version " + holder->version
                      : "promoted: @" + alias + " was unset";
  }
  if (holder) {
    p.previous = holder->version;
    reg::set_version_tag(client, name, candidate.version, previous_tag(alias), holder->version);
  }
  reg::set_alias(client, name, alias, candidate.version);
  p.promoted = true;
  return p;
}

std::string rollback(reg::MlflowClient& client, const std::string& name, const std::string& alias) {
  reg::ModelVersion holder = reg::version_by_alias(client, name, alias);
  auto it = holder.tags.find(previous_tag(alias));
  if (it == holder.tags.end() || it->second.empty())
    throw DataError("@" + alias + " of " + name + " points at version " + holder.version +
                    ", which replaced no other version; nothing to roll back to");
  reg::get_version(client, name, it->second);  // it must still exist
  reg::set_alias(client, name, alias, it->second);
  return it->second;
}

}  // namespace cd::model
