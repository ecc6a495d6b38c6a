// Experiment tracking hooks. cd-train reports to a TrainObserver; the MLflow
// implementation talks to a tracking server's REST API and never fails or
// slows training: an unreachable server costs one warning.
#pragma once

#include <map>
#include <memory>
#include <string>

namespace cd {

class TrainObserver {
 public:
  virtual ~TrainObserver() = default;
  virtual void on_start(const std::map<std::string, std::string>& params,
                        const std::map<std::string, std::string>& tags) = 0;
  virtual void on_epoch(int step, const std::map<std::string, double>& metrics) = 0;
  virtual void on_finish(bool success, const std::string& model_path) = 0;
};

// Null when MLFLOW_TRACKING_URI is unset or not http(s).
std::unique_ptr<TrainObserver> make_mlflow_observer(const std::string& experiment);

}  // namespace cd
