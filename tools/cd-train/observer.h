// Hooks through which a training run reports to the outside: the DVCLive
// files and the MLflow client are both observers, and so can be anything
// else (a test's recorder, a future TensorBoard writer). A tracker that
// cannot reach its server must not stop training, so the MLflow observer
// swallows its errors; DVCLive writes pipeline outputs and may throw IoError.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "cd-train/records.h"

namespace cd {

struct RunStart {
  std::map<std::string, std::string> params;  // run facts the config does not hold (train_images)
  std::map<std::string, std::string> tags;    // git_commit, data_fingerprint, resumed
};

class TrainObserver {
 public:
  virtual ~TrainObserver() = default;
  virtual void on_start(const RunStart& run) = 0;
  // After the epoch's checkpoint and model file are on disk.
  virtual void on_epoch(const EpochRecord& record, const std::vector<EpochRecord>& history) = 0;
  // summary is null when the run failed.
  virtual void on_finish(const TrainSummary* summary) = 0;
};

}  // namespace cd
