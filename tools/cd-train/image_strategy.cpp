// Full and finetune training: every batch goes through the whole network.
#include <ATen/ATen.h>
#include <torch/utils.h>

#include <cstdio>

#include "cd-train/strategy.h"
#include "nn/weights.h"
#include "util/hash.h"
#include "util/progress.h"
#include "util/random.h"

namespace cd {

namespace {

class ImageStrategy : public TrainStrategy {
 public:
  explicit ImageStrategy(const TrainContext& context) : m_c(context) {}

  Evaluation train_epoch(int epoch) override {
    const TrainParams& p = m_c.params;
    m_c.net.train();
    // Dropout draws from LibTorch's generator: seed it per epoch so a resumed
    // run draws exactly what an uninterrupted one would.
    torch::manual_seed(mix_seed(static_cast<std::uint64_t>(p.seed), 1000 + epoch));
    std::uint64_t epoch_seed = mix_seed(static_cast<std::uint64_t>(p.seed), epoch);
    const Augmentation* aug = p.augmentation.enabled() ? &p.augmentation : nullptr;
    // This rank's rows of each global batch (all of them in a single process).
    Group& group = m_c.group;
    const std::size_t total = m_c.train.size(), global_batch = p.batch_size;
    const std::size_t steps = steps_per_epoch(total, global_batch);
    std::vector<std::size_t> mine = shard_batches(shuffled_indices(total, epoch_seed), global_batch,
                                                  group.rank(), group.world());
    const std::size_t my_rows = mine.size();
    BatchStream stream(
        m_c.train, std::move(mine),
        static_cast<int>(rows_of_rank(total, global_batch, 0, group.rank(), group.world())), aug,
        epoch_seed, m_c.norm, p.workers);
    Progress progress("epoch " + std::to_string(epoch) + "/" + std::to_string(p.epochs), my_rows);
    Tally tally;
    Batch batch;
    for (std::size_t step = 0; step < steps; ++step) {
      if (p.mode == TrainMode::k_finetune) {
        // Linear warm-up so the first steps cannot wreck the pretrained features.
        double done = static_cast<double>((epoch - 1) * steps + step + 1);
        if (done <= p.warmup_steps) m_c.optimizer.warm_up(done / p.warmup_steps);
      }
      if (!stream.next(batch)) {  // the last global batch has no rows for this rank
        m_c.optimizer.step_without_rows();
        continue;
      }
      at::Tensor x = to_network_input(batch.x, m_c.device), y = batch.y.to(m_c.device);
      m_c.optimizer.zero_grad();
      at::Tensor logits = m_c.net.forward(x).view({-1});
      double share = share_of_step(total, global_batch, step, group.rank(), group.world());
      tally.add(m_c.optimizer.step(logits, y, epoch, step + 1, share), logits, y);
      progress.advance(static_cast<std::size_t>(y.size(0)));
      char suffix[48];
      std::snprintf(suffix, sizeof suffix, "loss %.4f", tally.loss());
      progress.set_suffix(suffix);
    }
    progress.finish();
    tally = tally.over_ranks(group);
    m_rows_seen += tally.seen;
    return tally.result();
  }

  Evaluation evaluate() override {
    m_c.net.eval();
    torch::NoGradGuard no_grad;
    Group& group = m_c.group;
    BatchStream stream(m_c.val, interleaved(m_c.val.size(), group.rank(), group.world()),
                       std::max(m_c.params.batch_size, 64), nullptr, 0, m_c.norm,
                       m_c.params.workers);
    Tally tally;
    Batch batch;
    while (stream.next(batch)) {
      at::Tensor x = to_network_input(batch.x, m_c.device), y = batch.y.to(m_c.device);
      at::Tensor logits = m_c.net.forward(x).view({-1});
      tally.add(at::binary_cross_entropy_with_logits(logits, y).item<double>(), logits, y);
    }
    return tally.over_ranks(group).result();
  }

  std::string model_weights() override { return serialize_module(m_c.net); }

 private:
  TrainContext m_c;
};

}  // namespace

std::unique_ptr<TrainStrategy> make_image_strategy(const TrainContext& context) {
  return std::make_unique<ImageStrategy>(context);
}

}  // namespace cd
