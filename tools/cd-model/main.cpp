// cd-model: a model's life in MLflow's Model Registry, for people and for CD.
//   cd-model register NAME --model models/model.cdm [--metrics eval/metrics.json]
//   cd-model list NAME
//   cd-model show NAME@ALIAS            (or models:/NAME@ALIAS, models:/NAME/VERSION)
//   cd-model promote NAME VERSION [--alias champion] [--force]
//   cd-model rollback NAME [--alias champion]
// The tracking server is MLFLOW_TRACKING_URI (or --tracking-uri); with
// MLFLOW_TRACKING_TOKEN set it is sent as a Bearer token.
#include <cstdio>
#include <nlohmann/json.hpp>

#include "cd-model/lifecycle.h"
#include "util/config.h"
#include "util/errors.h"
#include "util/options.h"
#include "util/strings.h"

namespace {

namespace reg = cd::registry;
using json = nlohmann::ordered_json;

struct ModelOptions {
  std::string tracking_uri;
  std::string model = "models/model.cdm";
  std::string metrics;
  std::string experiment = "catdog";
  std::string alias = "champion";
  bool force = false;
  bool json = false;
  std::vector<std::string> args;
};

json version_json(const reg::ModelVersion& v) {
  json tags = json::object();
  for (const auto& [k, value] : v.tags) tags[k] = value;
  return {{"name", v.name},     {"version", v.version}, {"aliases", v.aliases},
          {"source", v.source}, {"run_id", v.run_id},   {"tags", tags}};
}

std::string tag(const reg::ModelVersion& v, const std::string& key) {
  auto it = v.tags.find(key);
  return it == v.tags.end() ? "-" : it->second;
}

void print_version(const reg::ModelVersion& v, bool as_json) {
  if (as_json) {
    std::printf("%s\n", version_json(v).dump().c_str());
    return;
  }
  std::string aliases;
  for (const auto& a : v.aliases) aliases += (aliases.empty() ? "@" : ",@") + a;
  std::printf("%s\t%s\t%s\t%s\t%s\t%s\n", v.version.c_str(),
              aliases.empty() ? "-" : aliases.c_str(), tag(v, reg::k_tag_model_version).c_str(),
              tag(v, "test_accuracy").c_str(), tag(v, "test_log_loss").c_str(), v.source.c_str());
}

// NAME@ALIAS, models:/NAME@ALIAS or models:/NAME/VERSION.
reg::ModelUri model_ref(const std::string& text) {
  if (auto uri = reg::parse_model_uri(text)) return *uri;
  if (auto uri = reg::parse_model_uri("models:/" + text)) return *uri;
  throw cd::UsageError("'" + text +
                       "' names no model version; use NAME@ALIAS or models:/NAME/VERSION");
}

void need(const ModelOptions& o, std::size_t n, const char* usage) {
  if (o.args.size() != n) throw cd::UsageError(std::string("usage: cd-model ") + usage);
}

int model_main(int argc, char** argv) {
  ModelOptions o;
  cd::CommonOptions common;
  cd::Config c("cd-model",
               "Register, list, show, promote and roll back model versions in MLflow's Model "
               "Registry. COMMAND is register NAME, list NAME, show NAME@ALIAS, promote NAME "
               "VERSION or rollback NAME.");
  c.add_string("tracking_uri", o.tracking_uri,
               "MLflow tracking server (default: MLFLOW_TRACKING_URI)", "tracking-uri");
  c.add_string("model", o.model, "register: the model file");
  c.add_string("metrics", o.metrics, "register: cd-eval's metrics.json, kept as test_* tags");
  c.add_string("experiment", o.experiment,
               "register: the MLflow experiment of the run holding the file");
  c.add_string("alias", o.alias, "promote, rollback: the alias to move");
  c.add_bool("force", o.force, "promote even when the candidate's test metrics are worse");
  c.add_bool("json", o.json, "list, show: one JSON object per version");
  c.add_positionals(
      "COMMAND", o.args,
      "register NAME | list NAME | show NAME@ALIAS | promote NAME VERSION | rollback NAME");
  cd::add_common_options(c, common);
  if (c.parse(argc, argv) == cd::ParseOutcome::k_exit_ok) return 0;
  cd::apply_common_options(common);
  if (o.args.empty()) throw cd::UsageError("no command; run 'cd-model --help'");
  if (o.tracking_uri.empty()) o.tracking_uri = reg::MlflowClient::uri_from_env().value_or("");
  if (o.tracking_uri.empty())
    throw cd::UsageError("no tracking server: set MLFLOW_TRACKING_URI or --tracking-uri");
  reg::MlflowClient client(o.tracking_uri);
  const std::string& command = o.args[0];
  if (command == "register") {
    need(o, 2, "register NAME --model FILE [--metrics metrics.json]");
    auto v = cd::model::register_file(client, {o.args[1], o.model, o.metrics, o.experiment});
    std::fprintf(stderr, "cd-model: registered %s as %s version %s\n", o.model.c_str(),
                 v.name.c_str(), v.version.c_str());
    std::printf("%s\n", v.version.c_str());
  } else if (command == "list") {
    need(o, 2, "list NAME");
    for (const auto& v : reg::list_versions(client, o.args[1])) print_version(v, o.json);
  } else if (command == "show") {
    need(o, 2, "show NAME@ALIAS");
    reg::ModelUri uri = model_ref(o.args[1]);
    reg::ModelVersion v = reg::resolve(client, uri);
    if (!uri.alias.empty() && v.aliases.empty()) v.aliases.push_back(uri.alias);
    print_version(v, o.json);
  } else if (command == "promote") {
    need(o, 3, "promote NAME VERSION [--alias champion] [--force]");
    auto p = cd::model::promote(client, o.args[1], o.args[2], o.alias, o.force);
    std::fprintf(stderr, "cd-model: %s\n", p.reason.c_str());
    if (!p.promoted && p.previous != o.args[2]) return 1;
  } else if (command == "rollback") {
    need(o, 2, "rollback NAME [--alias champion]");
    std::string version = cd::model::rollback(client, o.args[1], o.alias);
    std::fprintf(stderr, "cd-model: @%s of %s is version %s again\n", o.alias.c_str(),
                 o.args[1].c_str(), version.c_str());
    std::printf("%s\n", version.c_str());
  } else {
    throw cd::UsageError("unknown command '" + command +
                         "'; use register, list, show, promote or rollback");
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) { return cd::run_tool("cd-model", argc, argv, model_main); }
