// cd-train's engine: Adam with BCE-with-logits, augmentation on loader
// threads, early stopping with restore-best, reduce-on-plateau, and a
// checkpoint after every epoch that --resume continues exactly. The loop is
// in trainer.cpp; how an epoch runs is a strategy (image_strategy.cpp for
// full and finetune, frozen_strategy.cpp for a frozen backbone).
#pragma once

#include <string>
#include <vector>

#include "cd-train/augment.h"
#include "cd-train/distributed.h"
#include "cd-train/observer.h"
#include "cd-train/records.h"
#include "domain/image.h"
#include "nn/compute.h"
#include "nn/nets.h"

namespace cd {

// full: train everything; frozen: cached backbone features, head only;
// finetune: everything, the backbone at a lower learning rate.
enum class TrainMode { k_full, k_frozen, k_finetune };
TrainMode parse_train_mode(const std::string& name);  // UsageError
std::string to_string(TrainMode mode);

struct TrainParams {
  // model
  std::string architecture = "compact";
  int input_size = 128;
  int second_input_size = 0;     // efficientnet-lite: also look at the image at this side (0: no)
  std::string second_backbone;   // efficientnet-lite: another Lite beside it ("": none)
  int second_backbone_size = 0;  // the side that one looks at (0: input_size)
  ResizePolicy resize = ResizePolicy::k_stretch;
  std::string pretrained;  // Tiny Darknet TF.js folder (architecture darknet)
  DarknetFeatures features = DarknetFeatures::k_both;
  TrainMode mode = TrainMode::k_full;
  int frozen_views = 2;  // frozen: cached views per image (1: as is, 2: + mirror, 3+: + augmented)
  double backbone_lr_factor = 0.05;  // finetune: backbone lr = lr * factor
  int finetune_stages = 0;           // finetune: 0 all stages learn; N only the last N
  bool keep_bn_statistics = false;   // full/finetune: BN uses its running statistics throughout
  int warmup_steps = 100;            // finetune: linear lr warm-up
  bool tta_flip = false;             // ask eval/predict/serve to average with the mirror image
  int int8_images = 0;  // after training: calibrate INT8 on this many training images (0: f32)
  std::string init;     // full/finetune: start from this trained model file's weights ("" = off)
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
  DeviceChoice device = DeviceChoice::k_cpu;
  int workers = 1;
  std::string feature_cache;  // frozen: folder of cached backbone features ("" = off)
  // paths
  std::string data = "data/prepared";
  std::string output = "models";
  std::string metrics = "metrics/train.json";
  std::string live = "dvclive";
  bool resume = false;
  // tracking
  std::string experiment = "catdog";
  std::string register_model;  // registered model name in MLflow's Model Registry ("": none)
  // distributed (WORLD_SIZE > 1)
  std::string dist_backend = "gloo";
  double dist_timeout_s = 300;
};

// Runs (or resumes) training; writes the model, checkpoint, metrics file and
// DVCLive files (params.live), and reports to every observer (MLflow). With
// dist.world > 1 it joins that process group and trains data-parallel; rank 0
// alone writes and reports.
TrainSummary train(const TrainParams& params, const std::vector<TrainObserver*>& observers = {},
                   const DistSettings& dist = {});

}  // namespace cd
