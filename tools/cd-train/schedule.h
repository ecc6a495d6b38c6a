// When training stops and how its learning rate falls: early stopping with
// Keras' semantics and reduce-on-plateau with PyTorch's. Small value types,
// so the checkpoint can store them and unit tests can drive them directly.
#pragma once

#include <cmath>
#include <string>

namespace cd {

// Why a run ended (k_running while it has not).
enum class StopReason { k_running, k_epochs, k_early_stopping, k_time_budget };

std::string to_string(StopReason reason);               // "running", "epochs", ...
StopReason parse_stop_reason(const std::string& name);  // ModelError-free: unknown -> k_running

// Stops after `patience` epochs in a row without a new best validation loss;
// the best epoch's weights are what the model file keeps (restore-best).
struct EarlyStopping {
  int patience = 5;
  double best_loss = INFINITY;
  int best_epoch = 0;
  int wait = 0;  // epochs since the last new best

  // Records one epoch; true when its loss is a new best.
  bool update(int epoch, double val_loss);
  bool exhausted() const { return wait >= patience; }
};

// Multiplies the learning rate by `factor` once the loss has failed to beat
// its best by a relative 1e-4 for more than `patience` epochs, never going
// below min_lr.
struct Plateau {
  double factor = 0.5;
  int patience = 3;
  double min_lr = 1e-6;
  double best = INFINITY;
  int bad = 0;  // epochs without a relative improvement

  // Records one epoch; returns the learning rate to use from now on.
  double update(double val_loss, double lr);
};

}  // namespace cd
