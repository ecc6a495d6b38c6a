// The training checkpoint: everything --resume needs to continue a run
// exactly (epoch, schedule state, history, current and best weights,
// optimizer state), in the model file's container as FileKind::k_checkpoint.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "cd-train/records.h"
#include "cd-train/schedule.h"

namespace cd {

// Mutable training state; all of it goes into the checkpoint.
struct TrainState {
  int epoch = 0;  // epochs completed
  double lr = 0;  // the scheduled learning rate
  EarlyStopping early;
  Plateau plateau;
  StopReason stop = StopReason::k_running;
  std::string stop_message;
  std::vector<EpochRecord> history;
  std::string best_weights;  // serialize_module() of the best epoch
  bool finished() const { return stop != StopReason::k_running; }
};

struct Checkpoint {
  nlohmann::json identity;    // what must match for --resume (architecture, data, seed...)
  nlohmann::json model_meta;  // meta_to_json() of the model being trained
  TrainState state;
  std::string weights;    // the current (last epoch's) weights
  std::string optimizer;  // the optimizer's archive
};

std::string encode_checkpoint(const Checkpoint& checkpoint);

// Throws ModelError naming origin for a truncated or malformed checkpoint.
// Schedule settings (patience, factor, min_lr) are not stored: the caller
// sets them from its parameters.
Checkpoint decode_checkpoint(const std::string& bytes, const std::string& origin);
Checkpoint read_checkpoint(const std::string& path);

nlohmann::json record_to_json(const EpochRecord& r);
EpochRecord record_from_json(const nlohmann::json& j);

}  // namespace cd
