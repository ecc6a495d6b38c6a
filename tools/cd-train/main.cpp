// cd-train: train a cat/dog classifier on cd-prepare's manifests.
#include "cd-train/mlflow.h"
#include "cd-train/train.h"
#include "nn/compute.h"
#include "nn/nets.h"
#include "util/config.h"
#include "util/errors.h"
#include "util/options.h"

#include <cstdlib>

namespace {

// Settings the config holds as text and the engine takes as enums.
struct Choices {
  std::string resize = "stretch", features = "both", mode = "full", device = "cpu";
};

void declare_model(cd::Config& c, cd::TrainParams& p, Choices& t) {
  c.add_choice("model.architecture", p.architecture, "network to train", cd::architecture_names(),
               "architecture");
  c.add_int("model.input_size", p.input_size, "square input side in pixels", 32, 1024,
            "input-size");
  c.add_int("model.second_input_size", p.second_input_size,
            "efficientnet-lite: the backbone also looks at the image resized to this side and "
            "the head reads both looks (about twice the cost); 0: one look",
            0, 1024, "second-input-size");
  c.add_string("model.second_backbone", p.second_backbone,
               "efficientnet-lite: a second ImageNet backbone (efficientnet-lite0|1|2, its weights "
               "beside model.pretrained's) also looks at the image and the head reads both "
               "(an ensemble; the cost of both); \"\": one backbone",
               "second-backbone");
  c.add_int("model.second_backbone_size", p.second_backbone_size,
            "model.second_backbone looks at the image resized to this side; 0: model.input_size", 0,
            1024, "second-backbone-size");
  c.add_choice("model.resize", t.resize, "how images reach the input size",
               {"stretch", "center-crop", "letterbox"}, "resize");
  c.add_string("model.pretrained", p.pretrained,
               "pretrained backbone: the Tiny Darknet TF.js folder (darknet) or "
               "data/pretrained/efficientnet-liteN (`dvc repro pretrained`)",
               "pretrained");
  c.add_choice("model.features", t.features, "pretrained backbone's head input",
               {"pooled", "logits", "both", "rich", "rich-max"}, "features");
  c.add_choice("model.mode", t.mode,
               "full: train everything; frozen: cached backbone features, head only; finetune: "
               "all, backbone at a "
               "lower lr",
               {"full", "frozen", "finetune"}, "mode");
  c.add_int("model.frozen_views", p.frozen_views,
            "frozen: cached views per training image (2 adds the mirror image, 3 and more "
            "augmented copies with the augmentation settings)",
            1, 8, "frozen-views");
  c.add_double("model.backbone_lr_factor", p.backbone_lr_factor,
               "finetune: backbone lr as a fraction of optimizer.lr", 0.0, 1.0,
               "backbone-lr-factor");
  c.add_int("model.finetune_stages", p.finetune_stages,
            "finetune: 0 trains every backbone stage, N only the last N (earlier stages stay "
            "frozen, BN statistics included)",
            0, 64, "finetune-stages");
  c.add_bool("model.keep_bn_statistics", p.keep_bn_statistics,
             "full/finetune: batch norm normalises with its running statistics while training "
             "too (scale and shift still learn); for fine-tuning from model.init in small batches",
             "keep-bn-statistics");
  c.add_int("model.warmup_steps", p.warmup_steps, "finetune: steps of linear lr warm-up", 0,
            1000000, "warmup-steps");
  c.add_string("model.init", p.init,
               "full/finetune: start from this trained model file (same architecture, input size "
               "and features), e.g. fine-tune from the head a frozen run trained; \"\": off",
               "init");
  c.add_int("model.int8_images", p.int8_images,
            "after training, calibrate INT8 on this many training images (spread over "
            "train.csv) and write the ranges into the model file, so cd-predict, cd-serve and "
            "cd-eval run it in 8 bits; 0: the model file stays f32",
            0, 100000, "int8-images");
  c.add_bool("model.tta_flip", p.tta_flip,
             "eval, predict and serve average each image with its mirror", "tta-flip");
}

void declare_schedule(cd::Config& c, cd::TrainParams& p) {
  c.add_double("optimizer.lr", p.lr, "Adam learning rate", 1e-7, 1.0, "lr");
  c.add_double("optimizer.weight_decay", p.weight_decay, "Adam weight decay", 0.0, 1.0,
               "weight-decay");
  c.add_int("schedule.epochs", p.epochs, "most epochs to train", 1, 10000, "epochs");
  c.add_int("schedule.batch_size", p.batch_size, "images per step", 1, 4096, "batch-size");
  c.add_int("schedule.early_stopping_patience", p.early_stopping_patience,
            "epochs without val loss improvement before stopping", 1, 1000, "patience");
  c.add_double("schedule.plateau_factor", p.plateau_factor, "learning rate factor on a plateau",
               0.01, 1.0, "plateau-factor");
  c.add_int("schedule.plateau_patience", p.plateau_patience,
            "epochs on a plateau before lowering the learning rate", 0, 1000, "plateau-patience");
  c.add_double("schedule.min_lr", p.min_lr, "lowest learning rate", 0.0, 1.0, "min-lr");
  c.add_double("schedule.time_budget_min", p.time_budget_min,
               "stop after the epoch that would cross this many minutes; 0 for none", 0.0, 1e6,
               "time-budget-min");
  c.add_int("schedule.max_train_images", p.max_train_images,
            "train on a seeded subset of this many images; 0 for all", 0, 100000000,
            "max-train-images");
  c.add_double("augmentation.rotation", p.augmentation.rotation_deg,
               "random rotation range in degrees", 0.0, 180.0, "rotation");
  c.add_double("augmentation.shift", p.augmentation.shift,
               "random width/height shift as a fraction", 0.0, 1.0, "shift");
  c.add_double("augmentation.zoom", p.augmentation.zoom, "random zoom range as a fraction", 0.0,
               0.9, "zoom");
  c.add_bool("augmentation.hflip", p.augmentation.hflip, "random horizontal flips", "hflip");
}

void declare_run(cd::Config& c, cd::TrainParams& p, Choices& t, cd::CommonOptions& common) {
  c.add_int("run.seed", p.seed, "random seed", 0, 2147483647, "seed");
  c.add_choice("run.device", t.device, "where to train", {"cpu", "cuda", "auto"}, "device");
  c.add_string("run.feature_cache", p.feature_cache,
               "frozen: a folder that keeps the backbone's features, keyed by backbone, input "
               "and data, so a second run with other head settings skips the feature pass; "
               "empty: off",
               "feature-cache");
  c.add_int("run.workers", p.workers, "loader threads that augment ahead of the model", 1, 64,
            "workers");
  c.add_string("data", p.data, "folder with train.csv and val.csv from cd-prepare");
  c.add_string("output", p.output, "folder for model.cdm and checkpoint.cdm");
  c.add_string("metrics", p.metrics, "metrics file for DVC");
  c.add_string("live", p.live, "DVCLive folder for per-epoch metrics");
  c.add_bool("resume", p.resume, "continue from <output>/checkpoint.cdm");
  c.add_string("tracking.experiment", p.experiment,
               "MLflow experiment name (used when MLFLOW_TRACKING_URI is set)", "experiment");
  c.add_string("tracking.register_model", p.register_model,
               "register the trained model as a new version of this model in MLflow's Model "
               "Registry (with MLFLOW_TRACKING_URI)",
               "register-model");
  c.add_choice("distributed.backend", p.dist_backend,
               "process group backend when WORLD_SIZE > 1 (nccl needs a CUDA LibTorch)",
               {"gloo", "nccl"}, "dist-backend");
  c.add_double("distributed.timeout_s", p.dist_timeout_s,
               "seconds a rank waits for the others (rendezvous, each collective) before failing",
               1.0, 86400.0, "dist-timeout-s");
  cd::add_common_options(c, common, "run.threads");
}

int train_main(int argc, char** argv) {
  cd::TrainParams params;
  cd::CommonOptions common;
  Choices choices;
  cd::Config config("cd-train", "Train a cat/dog classifier with LibTorch.");
  config.set_default_config_file("configs/train.yaml");
  declare_model(config, params, choices);
  declare_schedule(config, params);
  declare_run(config, params, choices, common);
  if (config.parse(argc, argv) == cd::ParseOutcome::k_exit_ok) return 0;
  params.resize = cd::parse_resize_policy(choices.resize);
  params.features = cd::parse_darknet_features(choices.features);
  params.mode = cd::parse_train_mode(choices.mode);
  params.device = cd::parse_device(choices.device);
  params.threads = cd::apply_common_options(common);
  cd::set_compute_threads(params.threads);
  // torchrun / PyTorchJob rendezvous variables; rank 0 alone reports to MLflow.
  cd::DistSettings dist = cd::dist_from_env(params.dist_backend, params.dist_timeout_s);
  const char* tracking_uri = std::getenv("MLFLOW_TRACKING_URI");
  if (!params.register_model.empty() && (!tracking_uri || !*tracking_uri))
    throw cd::UsageError("--register-model " + params.register_model +
                         " needs the tracking server: set MLFLOW_TRACKING_URI=http://host:port");
  std::unique_ptr<cd::TrainObserver> mlflow;
  if (dist.rank == 0)
    mlflow = cd::make_mlflow_observer(params.experiment, config.effective(), params.register_model);
  std::vector<cd::TrainObserver*> observers;
  if (mlflow) observers.push_back(mlflow.get());
  cd::TrainSummary summary = cd::train(params, observers, dist);
  return summary.history.empty() ? 1 : 0;
}

}  // namespace

int main(int argc, char** argv) { return cd::run_tool("cd-train", argc, argv, train_main); }
