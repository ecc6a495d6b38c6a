// cd-train's engine: Adam with BCE-with-logits, augmentation on loader
// threads, early stopping with restore-best, reduce-on-plateau, a checkpoint
// after every epoch that --resume continues exactly, and DVCLive output.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "catdog/image.h"
#include "catdog/tracking.h"

namespace cd {

struct TrainParams {
  // model
  std::string architecture = "compact";
  int input_size = 128;
  std::string resize = "stretch";
  std::string pretrained;          // Tiny Darknet TF.js folder (architecture darknet)
  std::string features = "both";   // darknet head input: pooled|logits|both
  std::string mode = "full";       // full | frozen (head only, features cached) | finetune
  int frozen_views = 2;            // frozen: cached views per image (1: as is, 2: + mirror)
  double backbone_lr_factor = 0.05;  // finetune: backbone lr = lr * factor
  int warmup_steps = 100;          // finetune: linear lr warm-up
  bool tta_flip = false;           // ask eval/predict/serve to average with the mirror image
  // optimizer
  double lr = 1e-3;
  double weight_decay = 0.0;
  // schedule
  int epochs = 30;
  int batch_size = 32;
  int early_stopping_patience = 5;
  double plateau_factor = 0.5;
  int plateau_patience = 3;
  double min_lr = 1e-6;
  double time_budget_min = 0;  // 0: no budget
  int max_train_images = 0;    // 0: all
  // augmentation
  Augmentation augmentation;
  // run
  int seed = 42;
  int threads = 0;
  std::string device = "cpu";
  int workers = 1;
  // paths
  std::string data = "data/prepared";
  std::string output = "models";
  std::string metrics = "metrics/train.json";
  std::string live = "dvclive";
  bool resume = false;
  // tracking
  std::string experiment = "catdog";
};

struct EpochRecord {
  int epoch = 0;  // 1-based
  double timestamp_ms = 0;
  double train_loss = 0, train_acc = 0, val_loss = 0, val_acc = 0;
  double lr = 0;
  double seconds = 0;
};

struct TrainSummary {
  std::vector<EpochRecord> history;
  int best_epoch = 0;
  bool stopped_early = false;
  std::string stop_reason;
  double images_per_second = 0;
  std::string model_path;
};

// Runs (or resumes) training; writes model, checkpoint, metrics and DVCLive files.
TrainSummary train(const TrainParams& params, TrainObserver* observer = nullptr);

// DVCLive's layout: <dir>/metrics.json and <dir>/plots/metrics/{train,val}/{loss,acc}.tsv.
void write_dvclive(const std::string& dir, const std::vector<EpochRecord>& history);

}  // namespace cd
