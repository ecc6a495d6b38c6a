// cd-model's engine: a model's life in MLflow's Model Registry. Register a
// model file as a new version (a run holding it as an artifact, tagged with
// its hash, commit, data fingerprint and test metrics), promote a version to
// an alias only when its test metrics are no worse than the alias holder's,
// and roll an alias back to the version it replaced.
#pragma once

#include <string>
#include <vector>

#include "registry/mlflow.h"

namespace cd::model {

struct RegisterRequest {
  std::string name;
  std::string model_path;
  std::string metrics_path;  // cd-eval's metrics.json; "" for none
  std::string experiment = "catdog";
};
registry::ModelVersion register_file(registry::MlflowClient& client, const RegisterRequest& r);

// The tag a promoted version keeps of the one it replaced under an alias.
std::string previous_tag(const std::string& alias);

struct Promotion {
  bool promoted = false;
  std::string previous;  // the version the alias pointed to before ("" when none)
  std::string reason;    // why it was or was not promoted, in words
};
// Refuses (promoted = false) when the candidate's test accuracy is lower than
// the holder's, or equal with a higher log loss, or when either has no test
// metrics to compare; `force` promotes anyway.
Promotion promote(registry::MlflowClient& client, const std::string& name,
                  const std::string& version, const std::string& alias, bool force);
// Points the alias back at the version its holder replaced; returns it.
std::string rollback(registry::MlflowClient& client, const std::string& name,
                     const std::string& alias);

}  // namespace cd::model
