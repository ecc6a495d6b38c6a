#include "catdog/train.h"

#include <ATen/ATen.h>
#include <torch/optim/adam.h>
#include <torch/serialize/input-archive.h>
#include <torch/serialize/output-archive.h>
#include <torch/utils.h>

#include <chrono>
#include <cmath>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <sstream>

#include <spdlog/spdlog.h>

#include "catdog/atomic_file.h"
#include "catdog/classifier.h"
#include "catdog/errors.h"
#include "catdog/hash.h"
#include "catdog/loader.h"
#include "catdog/manifest.h"
#include "catdog/model_file.h"
#include "catdog/nets.h"
#include "catdog/progress.h"

namespace cd {

namespace {

using json = nlohmann::json;

double now_ms() {
  return std::chrono::duration<double, std::milli>(std::chrono::system_clock::now().time_since_epoch()).count();
}

// Mutable training state; everything here goes into the checkpoint.
struct State {
  int epoch = 0;  // epochs completed
  double lr = 0;
  double best_val_loss = INFINITY;
  int best_epoch = 0;
  int wait = 0;  // early stopping: epochs without improvement
  double plateau_best = INFINITY;
  int plateau_bad = 0;
  bool finished = false;
  std::string stop_reason;
  std::vector<EpochRecord> history;
  std::string best_weights;
};

json record_to_json(const EpochRecord& r) {
  return {{"epoch", r.epoch}, {"timestamp_ms", r.timestamp_ms}, {"train_loss", r.train_loss},
          {"train_acc", r.train_acc}, {"val_loss", r.val_loss}, {"val_acc", r.val_acc},
          {"lr", r.lr}, {"seconds", r.seconds}};
}

EpochRecord record_from_json(const json& j) {
  EpochRecord r;
  r.epoch = j.at("epoch");
  r.timestamp_ms = j.at("timestamp_ms");
  r.train_loss = j.at("train_loss");
  r.train_acc = j.at("train_acc");
  r.val_loss = j.at("val_loss");
  r.val_acc = j.at("val_acc");
  r.lr = j.at("lr");
  r.seconds = j.at("seconds");
  return r;
}

std::string pack_blobs(const std::vector<std::string>& blobs) {
  std::string out;
  for (const auto& b : blobs) {
    std::uint64_t n = b.size();
    out.append(reinterpret_cast<const char*>(&n), sizeof n);
    out += b;
  }
  return out;
}

std::vector<std::string> unpack_blobs(const std::string& data, std::size_t count, const std::string& origin) {
  std::vector<std::string> blobs;
  std::size_t pos = 0;
  for (std::size_t i = 0; i < count; ++i) {
    std::uint64_t n = 0;
    if (data.size() - pos < sizeof n) throw ModelError(origin + ": checkpoint payload is truncated");
    std::memcpy(&n, data.data() + pos, sizeof n);
    pos += sizeof n;
    if (data.size() - pos < n) throw ModelError(origin + ": checkpoint payload is truncated");
    blobs.push_back(data.substr(pos, n));
    pos += n;
  }
  return blobs;
}

std::string save_optimizer(torch::optim::Adam& opt) {
  torch::serialize::OutputArchive archive;
  opt.save(archive);
  std::ostringstream out;
  archive.save_to(out);
  return out.str();
}

void load_optimizer(torch::optim::Adam& opt, const std::string& blob, const std::string& origin) {
  try {
    torch::serialize::InputArchive archive;
    std::istringstream in(blob);
    archive.load_from(in);
    opt.load(archive);
  } catch (const c10::Error& e) {
    throw ModelError(origin + ": optimizer state is corrupt; delete the checkpoint and train again");
  }
}

// With two parameter groups (fine-tuning) the first is the backbone, which
// learns at lr * backbone_factor; the second is the head.
void set_lr(torch::optim::Adam& opt, double lr, double backbone_factor) {
  auto& groups = opt.param_groups();
  for (std::size_t g = 0; g < groups.size(); ++g) {
    double scale = groups.size() == 2 && g == 0 ? backbone_factor : 1.0;
    static_cast<torch::optim::AdamOptions&>(groups[g].options()).lr(lr * scale);
  }
}

json run_identity(const TrainParams& p, const std::string& fingerprint) {
  return {{"architecture", p.architecture}, {"input_size", p.input_size}, {"resize", p.resize},
          {"mode", p.mode}, {"features", p.features},
          {"batch_size", p.batch_size}, {"seed", p.seed}, {"data_fingerprint", fingerprint}};
}

struct Evaluation {
  double loss = 0, acc = 0;
};

// Running loss and accuracy over an epoch's batches.
struct Tally {
  double loss_sum = 0, correct = 0, seen = 0;
  void add(double batch_loss, const at::Tensor& logits, const at::Tensor& y) {
    double n = static_cast<double>(y.size(0));
    loss_sum += batch_loss * n;
    correct += ((logits > 0).to(at::kFloat) == y).sum().item<double>();
    seen += n;
  }
  double loss() const { return loss_sum / seen; }
  double accuracy() const { return correct / seen; }
};

class Trainer {
 public:
  Trainer(const TrainParams& params, TrainObserver* observer) : m_p(params), m_observer(observer) {}
  TrainSummary run();

 private:
  void load_data();
  void build_model();
  bool try_resume();
  Evaluation train_epoch(int epoch);
  // One optimiser step on a batch's logits; throws DivergedError on a non-finite loss.
  double step(const at::Tensor& logits, const at::Tensor& y, int epoch, std::size_t batch);
  Evaluation evaluate();
  void after_epoch(const EpochRecord& rec);
  void save_checkpoint();
  void save_model(const std::string& weights);
  void write_metrics(const TrainSummary& summary);
  std::string checkpoint_path() const { return m_p.output + "/checkpoint.cdm"; }
  std::string model_path() const { return m_p.output + "/model.cdm"; }

  const TrainParams& m_p;
  TrainObserver* m_observer;
  std::vector<Sample> m_train_samples, m_val_samples;
  std::unique_ptr<ImageCache> m_train, m_val;
  std::string m_fingerprint;
  ModelMeta m_meta;
  Network m_net;
  // Frozen mode: backbone features computed once, standardised for the head.
  at::Tensor m_train_feats, m_train_labels, m_val_feats, m_val_labels, m_feat_mean, m_feat_std;
  bool frozen() const { return m_p.mode == "frozen"; }
  void extract_features();
  Evaluation train_epoch_frozen(int epoch);
  std::string model_weights();
  std::unique_ptr<torch::optim::Adam> m_opt;
  torch::Device m_device{torch::kCPU};
  State m_state;
  double m_images_seen = 0, m_train_seconds = 0;
  // Fault injection for the end-to-end tests: CD_FAULT_NAN_AT_STEP=N poisons step N's loss.
  long m_fault_nan_step = std::getenv("CD_FAULT_NAN_AT_STEP") ? std::atol(std::getenv("CD_FAULT_NAN_AT_STEP")) : 0;
  long m_steps = 0;
};

void check_classes(const std::vector<Sample>& samples, const std::string& origin) {
  if (samples.empty()) throw DataError(origin + " has no images; run cd-prepare on a folder of photos");
  bool seen[2] = {false, false};
  for (const auto& s : samples) seen[s.label] = true;
  if (!seen[0] || !seen[1])
    throw DataError(origin + " holds only " + std::string(seen[0] ? "cat" : "dog") +
                    " images; training needs both classes");
}

void Trainer::load_data() {
  std::string train_csv = m_p.data + "/train.csv", val_csv = m_p.data + "/val.csv";
  m_train_samples = read_manifest(train_csv);
  m_val_samples = read_manifest(val_csv);
  check_classes(m_train_samples, train_csv);
  if (m_val_samples.empty()) throw DataError(val_csv + " has no images; early stopping needs a validation split");
  if (m_p.max_train_images > 0 && static_cast<std::size_t>(m_p.max_train_images) < m_train_samples.size()) {
    auto order = shuffled_indices(m_train_samples.size(), mix_seed(m_p.seed, 0xdada));
    std::vector<Sample> subset;
    for (int i = 0; i < m_p.max_train_images; ++i) subset.push_back(m_train_samples[order[i]]);
    m_train_samples = subset;
    check_classes(m_train_samples, train_csv + " (first " + std::to_string(m_p.max_train_images) + ")");
  }
  m_fingerprint = hex64(fnv1a64(format_manifest(m_train_samples) + format_manifest(m_val_samples)));
  ResizePolicy policy = parse_resize_policy(m_p.resize);
  m_train = std::make_unique<ImageCache>(m_train_samples, m_p.input_size, policy, m_p.threads, train_csv);
  m_val = std::make_unique<ImageCache>(m_val_samples, m_p.input_size, policy, m_p.threads, val_csv);
}

void Trainer::build_model() {
  m_meta.architecture = m_p.architecture;
  m_meta.preprocess.size = m_p.input_size;
  m_meta.preprocess.resize = parse_resize_policy(m_p.resize);
  m_meta.preprocess.norm = Normalization::k_unit;
  m_meta.git_commit = git_commit();
  m_meta.data_fingerprint = m_fingerprint;
  m_meta.tta_flip = m_p.tta_flip;
  torch::manual_seed(static_cast<std::uint64_t>(m_p.seed));
  if (m_p.architecture == "darknet") {
    if (m_p.pretrained.empty())
      throw UsageError("architecture darknet needs model.pretrained, the Tiny Darknet TF.js folder");
    DarknetImport imported = import_tfjs_darknet(m_p.pretrained, m_p.features);
    m_meta.arch_params = imported.params;
    m_net = build_network(m_p.architecture, m_p.input_size, m_meta.arch_params);
    deserialize_module(*m_net, imported.weights, m_p.pretrained);
  } else {
    if (m_p.mode != "full")
      throw UsageError("model.mode " + m_p.mode + " needs a pretrained backbone; use architecture darknet");
    m_net = build_network(m_p.architecture, m_p.input_size, m_meta.arch_params);
  }
  m_device = select_device(parse_device(m_p.device));
  m_net->to(m_device);
  if (m_device.is_cpu()) to_channels_last(*m_net);
  auto options = [&](double lr) {
    return std::make_unique<torch::optim::AdamOptions>(torch::optim::AdamOptions(lr).weight_decay(m_p.weight_decay));
  };
  std::vector<at::Tensor> head = m_net->head_parameters();
  if (m_p.mode == "frozen") {
    std::vector<torch::optim::OptimizerParamGroup> groups;
    groups.emplace_back(head, options(m_p.lr));
    m_opt = std::make_unique<torch::optim::Adam>(std::move(groups), *options(m_p.lr));
  } else if (m_p.mode == "finetune") {
    std::vector<at::Tensor> backbone;
    for (const auto& p : m_net->parameters()) {
      bool in_head = std::any_of(head.begin(), head.end(), [&](const at::Tensor& h) { return h.is_same(p); });
      if (!in_head) backbone.push_back(p);
    }
    std::vector<torch::optim::OptimizerParamGroup> groups;
    groups.emplace_back(backbone, options(m_p.lr * m_p.backbone_lr_factor));
    groups.emplace_back(head, options(m_p.lr));
    m_opt = std::make_unique<torch::optim::Adam>(std::move(groups), *options(m_p.lr));
  } else {
    m_opt = std::make_unique<torch::optim::Adam>(m_net->parameters(), *options(m_p.lr));
  }
  m_state.lr = m_p.lr;
  spdlog::info("{}: {} parameters at {}x{}, device {}", m_p.architecture, count_parameters(*m_net),
               m_p.input_size, m_p.input_size, m_device.str());
}

bool Trainer::try_resume() {
  if (!m_p.resume) return false;
  if (!std::filesystem::exists(checkpoint_path())) {
    spdlog::warn("--resume: no checkpoint at {}; starting from scratch", checkpoint_path());
    return false;
  }
  FileParts parts = read_parts(checkpoint_path(), FileKind::k_checkpoint);
  const json& j = parts.meta;
  try {
    json expected = run_identity(m_p, m_fingerprint);
    if (j.at("identity") != expected)
      throw UsageError(checkpoint_path() + " was made by a different run (" + j.at("identity").dump() +
                       ", now " + expected.dump() + "); delete it or train without --resume");
    m_state.epoch = j.at("epoch");
    m_state.lr = j.at("lr");
    m_state.best_val_loss = j.at("best_val_loss");
    m_state.best_epoch = j.at("best_epoch");
    m_state.wait = j.at("wait");
    m_state.plateau_best = j.at("plateau_best");
    m_state.plateau_bad = j.at("plateau_bad");
    m_state.finished = j.at("finished");
    m_state.stop_reason = j.at("stop_reason");
    m_state.history.clear();
    for (const auto& r : j.at("history")) m_state.history.push_back(record_from_json(r));
  } catch (const json::exception& e) {
    throw ModelError(checkpoint_path() + ": training state is malformed (" + e.what() + ")");
  }
  auto blobs = unpack_blobs(parts.payload, 3, checkpoint_path());
  deserialize_module(*m_net, blobs[0], checkpoint_path());
  if (m_device.is_cpu()) to_channels_last(*m_net);
  m_state.best_weights = blobs[1];
  load_optimizer(*m_opt, blobs[2], checkpoint_path());
  set_lr(*m_opt, m_state.lr, m_p.backbone_lr_factor);
  spdlog::info("resumed {} after epoch {} (best val loss {:.4f} at epoch {})", checkpoint_path(),
               m_state.epoch, m_state.best_val_loss, m_state.best_epoch);
  return true;
}

Evaluation Trainer::train_epoch(int epoch) {
  if (frozen()) return train_epoch_frozen(epoch);
  m_net->train();
  // Dropout draws from LibTorch's generator: seed it per epoch so a resumed
  // run draws exactly what an uninterrupted one would.
  torch::manual_seed(mix_seed(static_cast<std::uint64_t>(m_p.seed), 1000 + epoch));
  std::uint64_t epoch_seed = mix_seed(static_cast<std::uint64_t>(m_p.seed), epoch);
  const Augmentation* aug = m_p.augmentation.enabled() ? &m_p.augmentation : nullptr;
  BatchStream stream(*m_train, shuffled_indices(m_train->size(), epoch_seed), m_p.batch_size, aug,
                     epoch_seed, m_meta.preprocess.norm, m_p.workers);
  Progress progress("epoch " + std::to_string(epoch) + "/" + std::to_string(m_p.epochs), m_train->size());
  Tally tally;
  Batch batch;
  std::size_t index = 0;
  while (stream.next(batch)) {
    at::Tensor x = batch.x.to(m_device), y = batch.y.to(m_device);
    if (m_device.is_cpu()) x = x.contiguous(at::MemoryFormat::ChannelsLast);
    if (m_p.mode == "finetune") {
      // Linear warm-up so the first steps cannot wreck the pretrained features.
      double done = static_cast<double>((epoch - 1) * stream.batches() + index + 1);
      if (done <= m_p.warmup_steps) set_lr(*m_opt, m_state.lr * done / m_p.warmup_steps, m_p.backbone_lr_factor);
    }
    m_opt->zero_grad();
    at::Tensor logits = m_net->forward(x).view({-1});
    tally.add(step(logits, y, epoch, ++index), logits, y);
    progress.advance(static_cast<std::size_t>(y.size(0)));
    char suffix[48];
    std::snprintf(suffix, sizeof suffix, "loss %.4f", tally.loss());
    progress.set_suffix(suffix);
  }
  progress.finish();
  m_images_seen += tally.seen;
  return {tally.loss(), tally.accuracy()};
}

double Trainer::step(const at::Tensor& logits, const at::Tensor& y, int epoch, std::size_t batch) {
  at::Tensor loss = at::binary_cross_entropy_with_logits(logits, y);
  if (m_fault_nan_step > 0 && ++m_steps == m_fault_nan_step) loss = loss * NAN;
  double value = loss.item<double>();
  if (!std::isfinite(value))
    throw DivergedError("training diverged: the loss became " + std::to_string(value) + " at epoch " +
                        std::to_string(epoch) + ", batch " + std::to_string(batch) +
                        "; lower optimizer.lr (now " + std::to_string(m_state.lr) + ")");
  loss.backward();
  m_opt->step();
  return value;
}

Evaluation Trainer::evaluate() {
  m_net->eval();
  torch::NoGradGuard no_grad;
  if (frozen()) {
    at::Tensor logits = m_net->classify(m_val_feats.to(m_device)).view({-1}).to(torch::kCPU);
    double loss = at::binary_cross_entropy_with_logits(logits, m_val_labels).item<double>();
    double acc = ((logits > 0).to(at::kFloat) == m_val_labels).to(at::kDouble).mean().item<double>();
    return {loss, acc};
  }
  std::vector<std::size_t> order(m_val->size());
  for (std::size_t i = 0; i < order.size(); ++i) order[i] = i;
  BatchStream stream(*m_val, order, std::max(m_p.batch_size, 64), nullptr, 0, m_meta.preprocess.norm, m_p.workers);
  double loss_sum = 0, correct = 0, seen = 0;
  Batch batch;
  while (stream.next(batch)) {
    at::Tensor x = batch.x.to(m_device), y = batch.y.to(m_device);
    if (m_device.is_cpu()) x = x.contiguous(at::MemoryFormat::ChannelsLast);
    at::Tensor logits = m_net->forward(x).view({-1});
    double n = static_cast<double>(y.size(0));
    loss_sum += at::binary_cross_entropy_with_logits(logits, y).item<double>() * n;
    correct += ((logits > 0).to(at::kFloat) == y).sum().item<double>();
    seen += n;
  }
  return {loss_sum / seen, correct / seen};
}

void Trainer::after_epoch(const EpochRecord& rec) {
  // Early stopping (Keras semantics: patience epochs without a new best).
  if (rec.val_loss < m_state.best_val_loss) {
    m_state.best_val_loss = rec.val_loss;
    m_state.best_epoch = rec.epoch;
    m_state.wait = 0;
    m_state.best_weights = model_weights();
  } else if (++m_state.wait >= m_p.early_stopping_patience) {
    m_state.finished = true;
    m_state.stop_reason = "early stopping: no val loss improvement for " + std::to_string(m_state.wait) + " epochs";
  }
  // Reduce-on-plateau (PyTorch semantics: relative threshold 1e-4).
  if (rec.val_loss < m_state.plateau_best * (1 - 1e-4)) {
    m_state.plateau_best = rec.val_loss;
    m_state.plateau_bad = 0;
  } else if (++m_state.plateau_bad > m_p.plateau_patience) {
    double lr = std::max(m_p.min_lr, m_state.lr * m_p.plateau_factor);
    if (lr < m_state.lr) spdlog::info("val loss plateaued: learning rate {} -> {}", m_state.lr, lr);
    m_state.lr = lr;
    m_state.plateau_bad = 0;
    set_lr(*m_opt, lr, m_p.backbone_lr_factor);
  }
  if (rec.epoch >= m_p.epochs && !m_state.finished) {
    m_state.finished = true;
    m_state.stop_reason = "reached " + std::to_string(m_p.epochs) + " epochs";
  }
}

void Trainer::save_checkpoint() {
  json j;
  j["identity"] = run_identity(m_p, m_fingerprint);
  j["model_meta"] = meta_to_json(m_meta);
  j["epoch"] = m_state.epoch;
  j["lr"] = m_state.lr;
  j["best_val_loss"] = m_state.best_val_loss;
  j["best_epoch"] = m_state.best_epoch;
  j["wait"] = m_state.wait;
  j["plateau_best"] = std::isfinite(m_state.plateau_best) ? m_state.plateau_best : 1e300;
  j["plateau_bad"] = m_state.plateau_bad;
  j["finished"] = m_state.finished;
  j["stop_reason"] = m_state.stop_reason;
  j["history"] = json::array();
  for (const auto& r : m_state.history) j["history"].push_back(record_to_json(r));
  FileParts parts{FileKind::k_checkpoint, j,
                  pack_blobs({serialize_module(*m_net), m_state.best_weights, save_optimizer(*m_opt)})};
  write_file_atomic(checkpoint_path(), pack_file(parts));
}

void Trainer::save_model(const std::string& weights) {
  const EpochRecord* best = nullptr;
  for (const auto& r : m_state.history)
    if (r.epoch == m_state.best_epoch) best = &r;
  m_meta.created = utc_now_iso8601();
  if (best)
    m_meta.val_metrics = {{"loss", best->val_loss}, {"accuracy", best->val_acc}, {"epoch", best->epoch}};
  write_file_atomic(model_path(), pack_file({FileKind::k_model, meta_to_json(m_meta), weights}));
}

void Trainer::write_metrics(const TrainSummary& s) {
  json m;
  const EpochRecord* best = nullptr;
  for (const auto& r : s.history)
    if (r.epoch == s.best_epoch) best = &r;
  m["epochs"] = s.history.size();
  m["best_epoch"] = s.best_epoch;
  if (best) {
    m["val_loss"] = best->val_loss;
    m["val_accuracy"] = best->val_acc;
    m["train_loss"] = best->train_loss;
    m["train_accuracy"] = best->train_acc;
  }
  m["stopped_early"] = s.stopped_early;
  m["train_images"] = m_train_samples.size();
  m["images_per_second"] = s.images_per_second;
  write_file_atomic(m_p.metrics, m.dump(2) + "\n");
}

void Trainer::extract_features() {
  m_net->eval();
  torch::NoGradGuard no_grad;
  auto embed_all = [&](const ImageCache& cache, bool mirror, const std::string& label) {
    std::vector<std::size_t> order(cache.size());
    for (std::size_t i = 0; i < order.size(); ++i) order[i] = i;
    BatchStream stream(cache, order, 64, nullptr, 0, m_meta.preprocess.norm, m_p.workers);
    Progress progress(label, cache.size());
    std::vector<at::Tensor> parts;
    Batch batch;
    while (stream.next(batch)) {
      at::Tensor x = batch.x.to(m_device);
      if (mirror) x = x.flip({3});
      if (m_device.is_cpu()) x = x.contiguous(at::MemoryFormat::ChannelsLast);
      parts.push_back(m_net->embed(x).to(torch::kCPU));
      progress.advance(static_cast<std::size_t>(x.size(0)));
    }
    progress.finish();
    return at::cat(parts);
  };
  auto labels = [](const ImageCache& cache) {
    at::Tensor y = at::empty({static_cast<int64_t>(cache.size())}, at::kFloat);
    for (std::size_t i = 0; i < cache.size(); ++i) y[i] = static_cast<float>(cache.label(i));
    return y;
  };
  auto t0 = std::chrono::steady_clock::now();
  std::vector<at::Tensor> views{embed_all(*m_train, false, "features train")};
  if (m_p.frozen_views > 1) views.push_back(embed_all(*m_train, true, "features train (mirrored)"));
  m_train_feats = at::cat(views);
  m_train_labels = labels(*m_train).repeat({static_cast<int64_t>(views.size())});
  m_val_feats = embed_all(*m_val, false, "features val");
  m_val_labels = labels(*m_val);
  m_feat_mean = m_train_feats.mean(0);
  m_feat_std = m_train_feats.std(0).clamp_min(1e-6);
  m_train_feats = (m_train_feats - m_feat_mean) / m_feat_std;
  m_val_feats = (m_val_feats - m_feat_mean) / m_feat_std;
  double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  spdlog::info("frozen backbone: {} feature rows of {} in {:.1f}s ({:.1f} img/s)", m_train_feats.size(0),
               m_train_feats.size(1), s, (m_train_feats.size(0) + m_val_feats.size(0)) / s);
  m_net->to(m_device);
}

Evaluation Trainer::train_epoch_frozen(int epoch) {
  m_net->train();
  std::uint64_t epoch_seed = mix_seed(static_cast<std::uint64_t>(m_p.seed), epoch);
  auto order = shuffled_indices(static_cast<std::size_t>(m_train_feats.size(0)), epoch_seed);
  Tally tally;
  std::size_t batch = 0;
  for (std::size_t begin = 0; begin < order.size(); begin += m_p.batch_size) {
    std::size_t end = std::min(order.size(), begin + m_p.batch_size);
    std::vector<int64_t> rows(order.begin() + begin, order.begin() + end);
    at::Tensor idx = at::tensor(rows);
    at::Tensor x = m_train_feats.index_select(0, idx).to(m_device), y = m_train_labels.index_select(0, idx).to(m_device);
    m_opt->zero_grad();
    at::Tensor logits = m_net->classify(x).view({-1});
    tally.add(step(logits, y, epoch, ++batch), logits, y);
  }
  m_images_seen += tally.seen;
  return {tally.loss(), tally.accuracy()};
}

// The weights a model file gets. In frozen mode the head was trained on
// standardised features; fold the standardisation into it so the saved
// network takes raw images like any other.
std::string Trainer::model_weights() {
  if (!frozen()) return serialize_module(*m_net);
  torch::NoGradGuard no_grad;
  auto head = m_net->head_parameters();  // weight [1,F], bias [1]
  at::Tensor w = head[0].clone(), b = head[1].clone();
  at::Tensor mean = m_feat_mean.to(w.device()), std = m_feat_std.to(w.device());
  head[0].copy_(w / std);
  head[1].copy_(b - (w / std * mean).sum());
  std::string out = serialize_module(*m_net);
  head[0].copy_(w);
  head[1].copy_(b);
  return out;
}

TrainSummary Trainer::run() {
  auto start = std::chrono::steady_clock::now();
  load_data();
  build_model();
  if (frozen()) extract_features();
  bool resumed = try_resume();
  if (m_observer) {
    std::map<std::string, std::string> params{
        {"architecture", m_p.architecture}, {"input_size", std::to_string(m_p.input_size)},
        {"lr", std::to_string(m_p.lr)}, {"batch_size", std::to_string(m_p.batch_size)},
        {"epochs", std::to_string(m_p.epochs)}, {"seed", std::to_string(m_p.seed)},
        {"train_images", std::to_string(m_train_samples.size())}};
    m_observer->on_start(params, {{"git_commit", git_commit()}, {"data_fingerprint", m_fingerprint},
                                  {"resumed", resumed ? "true" : "false"}});
  }
  if (m_state.finished && m_state.epoch >= m_p.epochs) spdlog::info("checkpoint is complete: {}", m_state.stop_reason);
  if (m_state.finished && m_state.epoch < m_p.epochs && m_state.stop_reason.rfind("reached", 0) == 0)
    m_state.finished = false;  // resumed with more epochs than the first run asked for
  while (!m_state.finished && m_state.epoch < m_p.epochs) {
    int epoch = m_state.epoch + 1;
    auto t0 = std::chrono::steady_clock::now();
    Evaluation tr = train_epoch(epoch);
    double train_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    m_train_seconds += train_s;
    Evaluation va = evaluate();
    if (!std::isfinite(va.loss))
      throw DivergedError("training diverged: validation loss is " + std::to_string(va.loss) + " after epoch " +
                          std::to_string(epoch) + "; lower optimizer.lr (now " + std::to_string(m_state.lr) + ")");
    EpochRecord rec{epoch, now_ms(), tr.loss, tr.acc, va.loss, va.acc, m_state.lr,
                    std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count()};
    m_state.history.push_back(rec);
    m_state.epoch = epoch;
    after_epoch(rec);
    double elapsed_min = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count() / 60;
    if (!m_state.finished && m_p.time_budget_min > 0 && elapsed_min + rec.seconds / 60 > m_p.time_budget_min) {
      m_state.finished = true;
      m_state.stop_reason = "time budget of " + std::to_string(m_p.time_budget_min) + " min reached";
    }
    save_checkpoint();
    save_model(m_state.best_weights);
    write_dvclive(m_p.live, m_state.history);
    spdlog::info("epoch {}: train loss {:.4f} acc {:.4f} | val loss {:.4f} acc {:.4f} | lr {:.2g} | {:.1f}s ({:.1f} img/s)",
                 epoch, tr.loss, tr.acc, va.loss, va.acc, rec.lr, rec.seconds, m_train->size() / train_s);
    if (m_observer)
      m_observer->on_epoch(epoch - 1, {{"train_loss", tr.loss}, {"train_accuracy", tr.acc},
                                       {"val_loss", va.loss}, {"val_accuracy", va.acc}, {"lr", rec.lr}});
  }
  if (m_state.history.empty()) throw DataError("no epoch ran; check schedule.epochs");
  save_model(m_state.best_weights);  // restore-best: the model file holds the best epoch
  write_dvclive(m_p.live, m_state.history);
  TrainSummary summary;
  summary.history = m_state.history;
  summary.best_epoch = m_state.best_epoch;
  summary.stopped_early = m_state.stop_reason.rfind("early", 0) == 0;
  summary.stop_reason = m_state.stop_reason;
  summary.images_per_second = m_train_seconds > 0 ? m_images_seen / m_train_seconds : 0;
  summary.model_path = model_path();
  write_metrics(summary);
  spdlog::info("done: {}; best epoch {} (val loss {:.4f}); model {}", m_state.stop_reason, m_state.best_epoch,
               m_state.best_val_loss, model_path());
  if (m_observer) m_observer->on_finish(true, model_path());
  return summary;
}

void write_tsv(const std::string& path, const std::string& name, const std::vector<EpochRecord>& history,
               double EpochRecord::*field) {
  std::string out = "timestamp\tstep\t" + name + "\n";
  char line[128];
  for (const auto& r : history) {
    std::snprintf(line, sizeof line, "%.0f\t%d\t%.17g\n", r.timestamp_ms, r.epoch - 1, r.*field);
    out += line;
  }
  write_file_atomic(path, out);
}

}  // namespace

void write_dvclive(const std::string& dir, const std::vector<EpochRecord>& history) {
  if (history.empty()) return;
  const EpochRecord& last = history.back();
  json m = {{"train", {{"loss", last.train_loss}, {"acc", last.train_acc}}},
            {"val", {{"loss", last.val_loss}, {"acc", last.val_acc}}},
            {"lr", last.lr},
            {"step", last.epoch - 1}};
  write_file_atomic(dir + "/metrics.json", m.dump(2) + "\n");
  std::string plots = dir + "/plots/metrics";
  write_tsv(plots + "/train/loss.tsv", "loss", history, &EpochRecord::train_loss);
  write_tsv(plots + "/train/acc.tsv", "acc", history, &EpochRecord::train_acc);
  write_tsv(plots + "/val/loss.tsv", "loss", history, &EpochRecord::val_loss);
  write_tsv(plots + "/val/acc.tsv", "acc", history, &EpochRecord::val_acc);
  write_tsv(plots + "/lr.tsv", "lr", history, &EpochRecord::lr);
}

TrainSummary train(const TrainParams& params, TrainObserver* observer) {
  if (params.resume == false && std::filesystem::exists(params.output + "/checkpoint.cdm"))
    spdlog::info("starting fresh; the old checkpoint in {} will be replaced", params.output);
  Trainer trainer(params, observer);
  try {
    return trainer.run();
  } catch (...) {
    if (observer) observer->on_finish(false, "");
    throw;
  }
}

}  // namespace cd
