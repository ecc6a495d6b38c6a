#include "cd-train/schedule.h"

#include <algorithm>

namespace cd {

std::string to_string(StopReason reason) {
  switch (reason) {
    case StopReason::k_running:
      return "running";
    case StopReason::k_epochs:
      return "epochs";
    case StopReason::k_early_stopping:
      return "early_stopping";
    case StopReason::k_time_budget:
      return "time_budget";
  }
  return "running";
}

StopReason parse_stop_reason(const std::string& name) {
  for (StopReason r :
       {StopReason::k_epochs, StopReason::k_early_stopping, StopReason::k_time_budget})
    if (to_string(r) == name) return r;
  return StopReason::k_running;
}

bool EarlyStopping::update(int epoch, double val_loss) {
  if (val_loss < best_loss) {
    best_loss = val_loss;
    best_epoch = epoch;
    wait = 0;
    return true;
  }
  ++wait;
  return false;
}

double Plateau::update(double val_loss, double lr) {
  if (val_loss < best * (1 - 1e-4)) {
    best = val_loss;
    bad = 0;
    return lr;
  }
  if (++bad <= patience) return lr;
  bad = 0;
  return std::max(min_lr, lr * factor);
}

}  // namespace cd
