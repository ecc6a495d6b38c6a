// Frozen-backbone training: the backbone's features are computed once per
// view of each training image (as is, mirrored, then augmented copies),
// standardised, and only the linear head trains on them, which makes an epoch
// cost milliseconds.
#include <ATen/ATen.h>
#include <torch/utils.h>

#include <chrono>
#include <filesystem>

#include <spdlog/spdlog.h>

#include "cd-train/strategy.h"
#include "nn/weights.h"
#include "util/atomic_file.h"
#include "util/hash.h"
#include "util/progress.h"
#include "util/random.h"

namespace cd {

namespace {

class FrozenStrategy : public TrainStrategy {
 public:
  explicit FrozenStrategy(const TrainContext& context) : m_c(context) {}

  void prepare() override {
    m_c.net.eval();
    torch::NoGradGuard no_grad;
    auto t0 = std::chrono::steady_clock::now();
    int cached = load_cached_features();
    if (cached < m_c.params.frozen_views) {
      // The backbone does not change, so it embeds as inference does: BN folded.
      m_backbone = folded_copy(m_c.net, m_c.meta.architecture, m_c.params.input_size,
                               m_c.meta.arch_params, m_c.device);
      std::vector<at::Tensor> views;
      if (cached > 0) views.push_back(m_train_feats);
      for (int v = cached; v < m_c.params.frozen_views; ++v) views.push_back(embed_view(v));
      m_train_feats = at::cat(views);
      if (cached == 0) m_val_feats = embed_all(m_c.val, false, nullptr, 0, "features val");
      m_backbone.reset();
      save_cached_features();
    }
    m_train_labels = labels(m_c.train).repeat({m_c.params.frozen_views});
    m_val_labels = labels(m_c.val);
    m_mean = m_train_feats.mean(0);
    m_std = m_train_feats.std(0).clamp_min(1e-6);
    m_train_feats = (m_train_feats - m_mean) / m_std;
    m_val_feats = (m_val_feats - m_mean) / m_std;
    double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    spdlog::info("frozen backbone: {} feature rows of {} in {:.1f}s ({:.1f} img/s)",
                 m_train_feats.size(0), m_train_feats.size(1), s,
                 static_cast<double>(m_train_feats.size(0) + m_val_feats.size(0)) / s);
  }

  // The head trains data-parallel too: each rank takes its rows of every
  // global batch of feature rows, and the optimizer sums the gradients.
  Evaluation train_epoch(int epoch) override {
    const TrainParams& p = m_c.params;
    Group& group = m_c.group;
    m_c.net.train();
    std::uint64_t epoch_seed = mix_seed(static_cast<std::uint64_t>(p.seed), epoch);
    const std::size_t total = static_cast<std::size_t>(m_train_feats.size(0));
    const std::size_t global_batch = p.batch_size;
    std::vector<std::size_t> mine = shard_batches(shuffled_indices(total, epoch_seed), global_batch,
                                                  group.rank(), group.world());
    Tally tally;
    std::size_t taken = 0;
    for (std::size_t step = 0; step < steps_per_epoch(total, global_batch); ++step) {
      std::size_t n = rows_of_rank(total, global_batch, step, group.rank(), group.world());
      if (n == 0) {  // the last global batch has no rows for this rank
        m_c.optimizer.step_without_rows();
        continue;
      }
      std::vector<int64_t> rows(mine.begin() + taken, mine.begin() + taken + n);
      taken += n;
      at::Tensor idx = at::tensor(rows);
      at::Tensor x = m_train_feats.index_select(0, idx).to(m_c.device);
      at::Tensor y = m_train_labels.index_select(0, idx).to(m_c.device);
      m_c.optimizer.zero_grad();
      at::Tensor logits = m_c.net.classify(x).view({-1});
      double share = share_of_step(total, global_batch, step, group.rank(), group.world());
      tally.add(m_c.optimizer.step(logits, y, epoch, step + 1, share), logits, y);
    }
    tally = tally.over_ranks(group);
    m_rows_seen += tally.seen;
    return tally.result();
  }

  Evaluation evaluate() override {
    m_c.net.eval();
    torch::NoGradGuard no_grad;
    at::Tensor logits = m_c.net.classify(m_val_feats.to(m_c.device)).view({-1}).to(at::kCPU);
    Tally tally;
    tally.add(at::binary_cross_entropy_with_logits(logits, m_val_labels).item<double>(), logits,
              m_val_labels);
    return tally.result();
  }

  // The head was trained on standardised features; fold the standardisation
  // into it so the saved network takes raw images like any other.
  std::string model_weights() override {
    torch::NoGradGuard no_grad;
    auto head = m_c.net.head_parameters();  // weight [1,F], bias [1]
    at::Tensor w = head[0].clone(), b = head[1].clone();
    at::Tensor mean = m_mean.to(w.device()), std = m_std.to(w.device());
    head[0].copy_(w / std);
    head[1].copy_(b - (w / std * mean).sum());
    std::string out = serialize_module(m_c.net);
    head[0].copy_(w);
    head[1].copy_(b);
    return out;
  }

 private:
  // View 0 is the image as is, 1 its mirror, 2 and on the training
  // augmentation with a seed of their own, so every view is reproducible.
  at::Tensor embed_view(int view) {
    if (view < 2)
      return embed_all(m_c.train, view == 1, nullptr, 0,
                       view == 1 ? "features train (mirrored)" : "features train");
    const Augmentation& aug = m_c.params.augmentation;
    return embed_all(m_c.train, false, &aug,
                     mix_seed(static_cast<std::uint64_t>(m_c.params.seed), 1000 + view),
                     "features train (augmented view " + std::to_string(view - 1) + ")");
  }

  // Sharded over the group: each rank embeds rows r, r+W, ... and every rank
  // gets all of them back in order.
  at::Tensor embed_all(const ImageCache& cache, bool mirror, const Augmentation* aug,
                       std::uint64_t seed, const std::string& label) {
    Group& group = m_c.group;
    std::vector<std::size_t> mine = interleaved(cache.size(), group.rank(), group.world());
    Progress progress(label, mine.size());
    BatchStream stream(cache, std::move(mine), 64, aug, seed, m_c.norm, m_c.params.workers);
    std::vector<at::Tensor> parts;
    Batch batch;
    while (stream.next(batch)) {
      at::Tensor x = to_network_input(mirror ? batch.x.flip({3}) : batch.x, m_c.device);
      parts.push_back(m_backbone->embed(x).to(at::kCPU));
      progress.advance(static_cast<std::size_t>(x.size(0)));
    }
    progress.finish();
    return gather_interleaved(group, parts.empty() ? empty_features() : at::cat(parts),
                              cache.size());
  }

  // run.feature_cache: the raw features of one backbone, input and data set,
  // in FOLDER/features-KEY.bin (a JSON header line, then float32 rows: each
  // train view in turn, then val). The key covers everything the features
  // depend on; a file with more views serves a run with fewer, and one with
  // fewer keeps its views, so only the missing ones are computed.
  std::string feature_cache_path() {
    if (m_c.params.feature_cache.empty()) return "";
    nlohmann::json key = {{"architecture", m_c.meta.architecture},
                          {"topology", m_c.meta.arch_params},
                          {"preprocess", to_string(m_c.meta.preprocess.resize) + "/" +
                                             to_string(m_c.meta.preprocess.norm) + "/" +
                                             std::to_string(m_c.params.input_size)},
                          {"data", m_c.meta.data_fingerprint}};
    std::uint64_t h = fnv1a64(key.dump());
    for (const auto& p : m_c.net.named_parameters())
      if (p.key().rfind("head.", 0) != 0) {
        at::Tensor t = p.value().detach().to(at::kCPU).contiguous();
        h = fnv1a64({static_cast<const char*>(t.data_ptr()), t.nbytes()}, h);
      }
    return m_c.params.feature_cache + "/features-" + hex64(h) + ".bin";
  }

  // The number of training views taken from the cache (0: none).
  int load_cached_features() {
    std::string path = feature_cache_path();
    if (path.empty()) return 0;
    if (!std::filesystem::exists(path)) {
      spdlog::info("frozen backbone: no cached features yet; they will be kept in {}", path);
      return 0;
    }
    std::string bytes = read_file(path);
    std::size_t eol = bytes.find('\n');
    int taken = 0;
    try {
      auto header = nlohmann::json::parse(bytes.substr(0, eol));
      std::int64_t train = header.at("train_rows"), val = header.at("val_rows"),
                   dim = header.at("dim"), views = header.at("views");
      if (eol == std::string::npos ||
          bytes.size() - eol - 1 != static_cast<std::size_t>((train + val) * dim) * sizeof(float) ||
          train != views * static_cast<std::int64_t>(m_c.train.size()))
        throw std::runtime_error("size");
      const char* rows = bytes.data() + eol + 1;
      taken = static_cast<int>(std::min<std::int64_t>(views, m_c.params.frozen_views));
      m_train_feats = at::from_blob(const_cast<char*>(rows), {train, dim}, at::kFloat)
                          .slice(0, 0, taken * static_cast<std::int64_t>(m_c.train.size()))
                          .clone();
      m_val_feats = at::from_blob(const_cast<char*>(rows) + train * dim * sizeof(float), {val, dim},
                                  at::kFloat)
                        .clone();
    } catch (const std::exception&) {
      spdlog::warn("{} is not a feature cache this run can use; computing the features", path);
      return 0;
    }
    spdlog::info("frozen backbone: features from {} ({} view(s) of each training image)", path,
                 taken);
    return taken;
  }

  void save_cached_features() {
    std::string path = feature_cache_path();
    if (path.empty() || m_c.group.rank() != 0) return;
    make_dirs(m_c.params.feature_cache);
    nlohmann::json header = {{"train_rows", m_train_feats.size(0)},
                             {"val_rows", m_val_feats.size(0)},
                             {"dim", m_train_feats.size(1)},
                             {"views", m_c.params.frozen_views}};
    at::Tensor train = m_train_feats.contiguous(), val = m_val_feats.contiguous();
    std::string bytes = header.dump() + "\n";
    bytes.append(static_cast<const char*>(train.data_ptr()), train.nbytes());
    bytes.append(static_cast<const char*>(val.data_ptr()), val.nbytes());
    write_file_atomic(path, bytes);
  }

  // No rows on this rank (fewer images than ranks): a [0, F] block to gather.
  at::Tensor empty_features() {
    torch::NoGradGuard no_grad;
    int size = m_c.params.input_size;
    at::Tensor probe =
        m_c.net.embed(to_network_input(at::zeros({1, 3, size, size}, at::kFloat), m_c.device));
    return at::empty({0, probe.size(1)}, at::kFloat);
  }

  static at::Tensor labels(const ImageCache& cache) {
    at::Tensor y = at::empty({static_cast<int64_t>(cache.size())}, at::kFloat);
    float* out = y.data_ptr<float>();
    for (std::size_t i = 0; i < cache.size(); ++i) out[i] = static_cast<float>(cache.label(i));
    return y;
  }

  TrainContext m_c;
  Network m_backbone;  // the folded copy, alive during prepare()
  at::Tensor m_train_feats, m_train_labels, m_val_feats, m_val_labels, m_mean, m_std;
};

}  // namespace

std::unique_ptr<TrainStrategy> make_frozen_strategy(const TrainContext& context) {
  return std::make_unique<FrozenStrategy>(context);
}

}  // namespace cd
