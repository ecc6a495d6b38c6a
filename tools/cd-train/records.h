// What a training run reports: one record per epoch, and the summary at the
// end. The checkpoint, DVCLive, MLflow and metrics.json are all written from
// these.
#pragma once

#include <string>
#include <vector>

#include "cd-train/schedule.h"

namespace cd {

struct EpochRecord {
  int epoch = 0;  // 1-based
  double timestamp_ms = 0;
  double train_loss = 0, train_acc = 0, val_loss = 0, val_acc = 0;
  double lr = 0;
  double seconds = 0;
  double val_p_dog_mean = -1;  // mean P(dog) on validation; -1 in checkpoints older than it
};

struct TrainSummary {
  std::vector<EpochRecord> history;
  int best_epoch = 0;
  StopReason stop = StopReason::k_running;
  std::string stop_message;  // for people: "early stopping: no val loss improvement for 5 epochs"
  double images_per_second = 0;
  std::size_t train_images = 0;
  std::string model_path;
  const EpochRecord* best() const;
};

// The record of a 1-based epoch, or null.
const EpochRecord* find_epoch(const std::vector<EpochRecord>& history, int epoch);

}  // namespace cd
