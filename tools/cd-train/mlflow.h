// The MLflow observer: logs a cd-train run through a tracking server's REST
// API (/api/2.0/mlflow/...): the experiment by name, every effective setting
// as a param, per-epoch metrics, tags, the model as an artifact when the
// server proxies artifacts, and the final status. It never fails or slows
// training: the first error costs one warning and turns tracking off.
#pragma once

#include <memory>
#include <string>

#include "cd-train/observer.h"
#include "util/config.h"

namespace cd {

// For MLFLOW_TRACKING_URI; null when it is unset or not http(s).
// register_model: when set, the uploaded model becomes a new version of this
// registered model, tagged as cd-model register tags it (registry/mlflow.h).
std::unique_ptr<TrainObserver> make_mlflow_observer(const std::string& experiment,
                                                    Settings settings,
                                                    const std::string& register_model = "");

// For a given tracking URI (http://host:port[/prefix]); null when not http(s).
std::unique_ptr<TrainObserver> make_mlflow_observer(const std::string& tracking_uri,
                                                    const std::string& experiment,
                                                    Settings settings,
                                                    const std::string& register_model = "");

}  // namespace cd
