// The training loop: data, model and optimizer set-up, resume, one epoch at
// a time through the mode's strategy, the schedule, and the files every epoch
// leaves behind (checkpoint, model, metrics) before the observers hear of it.
#include <ATen/ATen.h>
#include <torch/utils.h>

#include <chrono>
#include <filesystem>
#include <nlohmann/json.hpp>

#include <spdlog/spdlog.h>

#include "cd-train/checkpoint.h"
#include "cd-train/dvclive.h"
#include "cd-train/loader.h"
#include "cd-train/network_setup.h"
#include "cd-train/optimizer.h"
#include "cd-train/strategy.h"
#include "cd-train/train.h"
#include "domain/manifest.h"
#include "domain/model_file.h"
#include "nn/classifier.h"
#include "nn/efficientnet.h"
#include "nn/weights.h"
#include "runtime/predictor.h"
#include "util/atomic_file.h"
#include "util/errors.h"
#include "util/hash.h"
#include "util/random.h"
#include "util/version.h"

namespace cd {

namespace {

using json = nlohmann::json;

constexpr int k_calibration_batch = 32;

double now_ms() {
  return std::chrono::duration<double, std::milli>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// What must match between a checkpoint and the run resuming it.
json run_identity(const TrainParams& p, const std::string& fingerprint) {
  return {{"architecture", p.architecture},
          {"input_size", p.input_size},
          {"second_input_size", p.second_input_size},
          {"second_backbone", p.second_backbone},
          {"second_backbone_size", p.second_backbone_size},
          {"resize", to_string(p.resize)},
          {"mode", to_string(p.mode)},
          {"features", to_string(p.features)},
          {"finetune_stages", p.mode == TrainMode::k_finetune ? p.finetune_stages : 0},
          {"batch_size", p.batch_size},
          {"init", p.init},
          {"keep_bn_statistics", p.keep_bn_statistics},
          {"seed", p.seed},
          {"data_fingerprint", fingerprint}};
}

// The schedule's settings come from the parameters, never from a checkpoint.
void configure_schedule(TrainState& state, const TrainParams& p) {
  state.early.patience = p.early_stopping_patience;
  state.plateau.factor = p.plateau_factor;
  state.plateau.patience = p.plateau_patience;
  state.plateau.min_lr = p.min_lr;
}

void check_classes(const std::vector<Sample>& samples, const std::string& origin) {
  if (samples.empty())
    throw DataError(origin + " has no images; run cd-prepare on a folder of photos");
  bool seen[2] = {false, false};
  for (const auto& s : samples) seen[s.label] = true;
  if (!seen[0] || !seen[1])
    throw DataError(origin + " holds only " + label_name(seen[0] ? Label::k_cat : Label::k_dog) +
                    " images; training needs both classes");
}

// The same values on every rank: the root's (parameters, buffers, decisions).
void broadcast_tensors(Group& group, std::vector<at::Tensor> all) {
  if (group.world() == 1 || all.empty()) return;
  std::vector<at::Tensor> flat;
  for (const auto& t : all) flat.push_back(t.detach().reshape({-1}).to(at::kCPU, at::kDouble));
  at::Tensor joined = at::cat(flat);
  group.broadcast_from_root(joined);
  torch::NoGradGuard no_grad;
  int64_t offset = 0;
  for (auto& t : all) {
    t.copy_(joined.narrow(0, offset, t.numel()).view(t.sizes()));
    offset += t.numel();
  }
}

void broadcast_module(Group& group, torch::nn::Module& module) {
  std::vector<at::Tensor> all = module.parameters();
  for (const auto& b : module.buffers()) all.push_back(b);
  broadcast_tensors(group, all);
}

bool root_decides(Group& group, bool decision) {
  return sum_over_ranks(group, {group.root() && decision ? 1.0 : 0.0})[0] > 0;
}

class Trainer {
 public:
  Trainer(const TrainParams& params, const std::vector<TrainObserver*>& observers, Group& group)
      : m_p(params), m_observers(observers), m_group(group) {}
  TrainSummary run();

 private:
  void load_data();
  void build_model();
  bool try_resume();
  void run_epoch(std::chrono::steady_clock::time_point start);
  void update_schedule(const EpochRecord& rec);
  void save_checkpoint();
  void save_model();
  void calibrate_model();
  TrainSummary summary() const;
  void write_metrics(const TrainSummary& summary) const;
  std::string checkpoint_path() const { return m_p.output + "/checkpoint.cdm"; }
  std::string model_path() const { return m_p.output + "/model.cdm"; }

  const TrainParams& m_p;
  const std::vector<TrainObserver*>& m_observers;
  Group& m_group;  // rank 0 alone writes files and reports
  std::vector<Sample> m_train_samples, m_val_samples;
  std::unique_ptr<ImageCache> m_train, m_val;
  std::string m_fingerprint;
  ModelMeta m_meta;
  Network m_net;
  c10::Device m_device{c10::kCPU};
  std::unique_ptr<Optimizer> m_optimizer;
  std::unique_ptr<TrainStrategy> m_strategy;
  TrainState m_state;
  double m_train_seconds = 0;
  std::size_t m_int8_images = 0;  // what the model file's INT8 ranges were calibrated on
};

void Trainer::load_data() {
  std::string train_csv = m_p.data + "/train.csv", val_csv = m_p.data + "/val.csv";
  m_train_samples = read_manifest(train_csv);
  m_val_samples = read_manifest(val_csv);
  check_classes(m_train_samples, train_csv);
  if (m_val_samples.empty())
    throw DataError(val_csv + " has no images; early stopping needs a validation split");
  if (m_p.max_train_images > 0 &&
      static_cast<std::size_t>(m_p.max_train_images) < m_train_samples.size()) {
    auto order = shuffled_indices(m_train_samples.size(), mix_seed(m_p.seed, 0xdada));
    std::vector<Sample> subset;
    for (int i = 0; i < m_p.max_train_images; ++i) subset.push_back(m_train_samples[order[i]]);
    m_train_samples = subset;
    check_classes(m_train_samples,
                  train_csv + " (first " + std::to_string(m_p.max_train_images) + ")");
  }
  m_fingerprint = hex64(fnv1a64(format_manifest(m_train_samples) + format_manifest(m_val_samples)));
  // A frozen run embeds each image once, on one rank: each rank decodes its rows alone.
  int rank = 0, world = 1;
  if (m_p.mode == TrainMode::k_frozen) rank = m_group.rank(), world = m_group.world();
  m_train = std::make_unique<ImageCache>(m_train_samples, m_p.input_size, m_p.resize, m_p.threads,
                                         train_csv, rank, world);
  m_val = std::make_unique<ImageCache>(m_val_samples, m_p.input_size, m_p.resize, m_p.threads,
                                       val_csv, rank, world);
}

void Trainer::build_model() {
  m_meta.architecture = m_p.architecture;
  m_meta.preprocess = {
      m_p.input_size, m_p.resize,
      is_efficientnet_lite(m_p.architecture) ? Normalization::k_signed : Normalization::k_unit};
  m_meta.git_commit = git_commit();
  m_meta.data_fingerprint = m_fingerprint;
  m_meta.tta_flip = m_p.tta_flip;
  torch::manual_seed(static_cast<std::uint64_t>(m_p.seed));
  m_net = initial_network(m_p, m_meta);
  m_device = select_device(m_p.device);
  m_net->to(m_device);
  if (m_device.is_cpu()) to_channels_last(*m_net);
  m_optimizer = std::make_unique<Optimizer>(*m_net, m_p);
  m_state.lr = m_p.lr;
  configure_schedule(m_state, m_p);
  spdlog::info("{}: {} parameters at {}x{}, device {}", m_p.architecture, count_parameters(*m_net),
               m_p.input_size, m_p.input_size, m_device.str());
}

bool Trainer::try_resume() {
  if (!m_p.resume) return false;
  if (!std::filesystem::exists(checkpoint_path())) {
    spdlog::warn("--resume: no checkpoint at {}; starting from scratch", checkpoint_path());
    return false;
  }
  Checkpoint c = read_checkpoint(checkpoint_path());
  json expected = run_identity(m_p, m_fingerprint);
  if (c.identity != expected)
    throw UsageError(checkpoint_path() + " was made by a different run (" + c.identity.dump() +
                     ", now " + expected.dump() + "); delete it or train without --resume");
  m_state = std::move(c.state);
  configure_schedule(m_state, m_p);
  deserialize_module(*m_net, c.weights, checkpoint_path());
  if (m_device.is_cpu()) to_channels_last(*m_net);
  m_optimizer->load(c.optimizer, checkpoint_path());
  m_optimizer->set_lr(m_state.lr);
  spdlog::info("resumed {} after epoch {} (best val loss {:.4f} at epoch {})", checkpoint_path(),
               m_state.epoch, m_state.early.best_loss, m_state.early.best_epoch);
  return true;
}

void Trainer::update_schedule(const EpochRecord& rec) {
  if (m_state.early.update(rec.epoch, rec.val_loss)) {
    m_state.best_weights = m_strategy->model_weights();
  } else if (m_state.early.exhausted()) {
    m_state.stop = StopReason::k_early_stopping;
    m_state.stop_message = "early stopping: no val loss improvement for " +
                           std::to_string(m_state.early.wait) + " epochs";
  }
  double lr = m_state.plateau.update(rec.val_loss, m_state.lr);
  if (lr != m_state.lr) {
    spdlog::info("val loss plateaued: learning rate {} -> {}", m_state.lr, lr);
    m_state.lr = lr;
    m_optimizer->set_lr(lr);
  }
  if (rec.epoch >= m_p.epochs && !m_state.finished()) {
    m_state.stop = StopReason::k_epochs;
    m_state.stop_message = "reached " + std::to_string(m_p.epochs) + " epochs";
  }
}

void Trainer::run_epoch(std::chrono::steady_clock::time_point start) {
  int epoch = m_state.epoch + 1;
  auto t0 = std::chrono::steady_clock::now();
  Evaluation tr = m_strategy->train_epoch(epoch);
  // BatchNorm's running statistics saw only each rank's rows: take the
  // root's, as PyTorch's DistributedDataParallel does by default.
  broadcast_tensors(m_group, m_net->buffers());
  double train_s = seconds_since(t0);
  m_train_seconds += train_s;
  Evaluation va = m_strategy->evaluate();
  if (!std::isfinite(va.loss))
    throw DivergedError("training diverged: validation loss is " + std::to_string(va.loss) +
                        " after epoch " + std::to_string(epoch) + "; lower optimizer.lr (now " +
                        std::to_string(m_state.lr) + ")");
  EpochRecord rec{epoch,  now_ms(),   tr.loss,           tr.acc,       va.loss,
                  va.acc, m_state.lr, seconds_since(t0), va.p_dog_mean};
  m_state.history.push_back(rec);
  m_state.epoch = epoch;
  update_schedule(rec);
  double elapsed_min = seconds_since(start) / 60;
  // Clocks differ between ranks: the root's decides for all.
  if (!m_state.finished() && m_p.time_budget_min > 0 &&
      root_decides(m_group, elapsed_min + rec.seconds / 60 > m_p.time_budget_min)) {
    m_state.stop = StopReason::k_time_budget;
    m_state.stop_message = "time budget of " + std::to_string(m_p.time_budget_min) + " min reached";
  }
  save_checkpoint();
  save_model();
  spdlog::info(
      "epoch {}: train loss {:.4f} acc {:.4f} | val loss {:.4f} acc {:.4f} | lr {:.2g} | {:.1f}s "
      "({:.1f} img/s)",
      epoch, tr.loss, tr.acc, va.loss, va.acc, rec.lr, rec.seconds,
      static_cast<double>(m_train->size()) / train_s);
  for (auto* o : m_observers) o->on_epoch(rec, m_state.history);
}

void Trainer::save_checkpoint() {
  if (!m_group.root()) return;
  Checkpoint c{run_identity(m_p, m_fingerprint), meta_to_json(m_meta), m_state,
               serialize_module(*m_net), m_optimizer->save()};
  write_file_atomic(checkpoint_path(), encode_checkpoint(c));
}

// Restore-best: the model file always holds the best epoch so far.
void Trainer::save_model() {
  if (!m_group.root()) return;
  const EpochRecord* best = find_epoch(m_state.history, m_state.early.best_epoch);
  m_meta.created = utc_now_iso8601();
  if (best) {
    m_meta.val_metrics = {
        {"loss", best->val_loss}, {"accuracy", best->val_acc}, {"epoch", best->epoch}};
    // The prediction mix at training time: cd-serve exports it, and the drift
    // alert compares live traffic against it.
    if (best->val_p_dog_mean >= 0) m_meta.val_metrics["p_dog_mean"] = best->val_p_dog_mean;
  }
  // With the inference graph, which cd-predict and cd-serve run without LibTorch.
  write_file_atomic(model_path(), pack_model(m_meta, m_state.best_weights, model_path()));
}

// The model file as cd-predict and cd-serve run it: calibrated on
// int8_images training photos (every k-th of train.csv, unaugmented) on the
// CPU's oneDNN runtime, wherever training ran, and written again with its
// INT8 ranges (runtime/predictor.h).
void Trainer::calibrate_model() {
  if (!m_group.root() || m_p.int8_images == 0) return;
  RuntimeOptions options;
  options.threads = m_p.threads;
  std::unique_ptr<Predictor> model = open_predictor(model_path(), options);
  std::vector<std::string> paths;
  for (const Sample& s : m_train_samples) paths.push_back(s.path);
  try {
    m_int8_images = calibrate_int8(*model, paths, static_cast<std::size_t>(m_p.int8_images),
                                   k_calibration_batch, m_p.threads, m_p.data + "/train.csv");
    model->write_int8_model(model_path());
  } catch (const DataError& e) {
    throw DataError(std::string(e.what()) + ". Training itself finished: " + model_path() +
                    " holds the best epoch in f32. Fix the images and run again with --resume "
                    "(it calibrates without training again), or set model.int8_images: 0");
  }
  spdlog::info(
      "int8: {} calibrated on {} training images; cd-predict, cd-serve and cd-eval run it "
      "in 8 bits",
      model_path(), m_int8_images);
}

TrainSummary Trainer::summary() const {
  TrainSummary s;
  s.history = m_state.history;
  s.best_epoch = m_state.early.best_epoch;
  s.stop = m_state.stop;
  s.stop_message = m_state.stop_message;
  s.images_per_second = m_train_seconds > 0 ? m_strategy->rows_seen() / m_train_seconds : 0;
  s.train_images = m_train_samples.size();
  s.model_path = model_path();
  return s;
}

void Trainer::write_metrics(const TrainSummary& s) const {
  if (!m_group.root()) return;
  json m;
  m["epochs"] = s.history.size();
  m["best_epoch"] = s.best_epoch;
  if (const EpochRecord* best = s.best()) {
    m["val_loss"] = best->val_loss;
    m["val_accuracy"] = best->val_acc;
    m["train_loss"] = best->train_loss;
    m["train_accuracy"] = best->train_acc;
  }
  m["stopped_early"] = s.stop == StopReason::k_early_stopping;
  m["train_images"] = s.train_images;
  m["images_per_second"] = s.images_per_second;
  m["int8_calibration_images"] = m_int8_images;
  write_file_atomic(m_p.metrics, m.dump(2) + "\n");
}

TrainSummary Trainer::run() {
  auto start = std::chrono::steady_clock::now();
  load_data();
  build_model();
  broadcast_module(m_group, *m_net);
  m_optimizer->set_group(&m_group);
  m_strategy = make_strategy({m_p, *m_net, *m_optimizer, m_device, *m_train, *m_val,
                              m_meta.preprocess.norm, m_group, m_meta});
  m_strategy->prepare();
  bool resumed = try_resume();
  if (m_group.world() > 1) {
    // Every rank resumes from the same checkpoint: rank 0's, on a shared --output.
    double root_epoch =
        sum_over_ranks(m_group, {m_group.root() ? static_cast<double>(m_state.epoch) : 0.0})[0];
    if (root_epoch != m_state.epoch)
      throw Error("distributed: rank " + std::to_string(m_group.rank()) + " resumed after epoch " +
                  std::to_string(m_state.epoch) + " but rank 0 after epoch " +
                  std::to_string(static_cast<int>(root_epoch)) + "; give every rank the same " +
                  "--output on a shared volume");
  }
  RunStart run{{{"train_images", std::to_string(m_train_samples.size())}},
               {{"git_commit", git_commit()},
                {"data_fingerprint", m_fingerprint},
                {"resumed", resumed ? "true" : "false"}}};
  for (auto* o : m_observers) o->on_start(run);
  if (m_state.finished() && m_state.epoch >= m_p.epochs)
    spdlog::info("checkpoint is complete: {}", m_state.stop_message);
  if (m_state.stop == StopReason::k_epochs && m_state.epoch < m_p.epochs)
    m_state.stop = StopReason::k_running;  // resumed with more epochs than the first run asked for
  while (!m_state.finished() && m_state.epoch < m_p.epochs) run_epoch(start);
  if (m_state.history.empty()) throw DataError("no epoch ran; check schedule.epochs");
  save_model();
  calibrate_model();
  TrainSummary s = summary();
  write_metrics(s);
  spdlog::info("done: {}; best epoch {} (val loss {:.4f}); model {}", m_state.stop_message,
               m_state.early.best_epoch, m_state.early.best_loss,
               m_group.root() ? model_path() : "written by rank 0");
  for (auto* o : m_observers) o->on_finish(&s);
  return s;
}

}  // namespace

TrainMode parse_train_mode(const std::string& name) {
  if (name == "full") return TrainMode::k_full;
  if (name == "frozen") return TrainMode::k_frozen;
  if (name == "finetune") return TrainMode::k_finetune;
  throw UsageError("model.mode '" + name + "' is not known; allowed: full|frozen|finetune");
}

std::string to_string(TrainMode mode) {
  switch (mode) {
    case TrainMode::k_full:
      return "full";
    case TrainMode::k_frozen:
      return "frozen";
    case TrainMode::k_finetune:
      return "finetune";
  }
  return "full";
}

const EpochRecord* find_epoch(const std::vector<EpochRecord>& history, int epoch) {
  for (const auto& r : history)
    if (r.epoch == epoch) return &r;
  return nullptr;
}

const EpochRecord* TrainSummary::best() const { return find_epoch(history, best_epoch); }

TrainSummary train(const TrainParams& params, const std::vector<TrainObserver*>& observers,
                   const DistSettings& dist) {
  if (dist.world > 1 && params.batch_size < dist.world)
    throw UsageError("schedule.batch_size " + std::to_string(params.batch_size) +
                     " is the global batch; it must be at least WORLD_SIZE (" +
                     std::to_string(dist.world) + ")");
  std::unique_ptr<Group> group = join_group(dist);
  if (group->root() && !params.resume && std::filesystem::exists(params.output + "/checkpoint.cdm"))
    spdlog::info("starting fresh; the old checkpoint in {} will be replaced", params.output);
  DvcLiveObserver live(params.live);
  std::vector<TrainObserver*> all;
  if (group->root()) {  // the other ranks compute the same records and report nothing
    all.push_back(&live);
    all.insert(all.end(), observers.begin(), observers.end());
  }
  Trainer trainer(params, all, *group);
  try {
    return trainer.run();
  } catch (...) {
    for (auto* o : all) o->on_finish(nullptr);
    throw;
  }
}

}  // namespace cd
