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
    BatchStream stream(m_c.train, shuffled_indices(m_c.train.size(), epoch_seed), p.batch_size, aug,
                       epoch_seed, m_c.norm, p.workers);
    Progress progress("epoch " + std::to_string(epoch) + "/" + std::to_string(p.epochs),
                      m_c.train.size());
    Tally tally;
    Batch batch;
    std::size_t index = 0;
    while (stream.next(batch)) {
      at::Tensor x = to_network_input(batch.x, m_c.device), y = batch.y.to(m_c.device);
      if (p.mode == TrainMode::k_finetune) {
        // Linear warm-up so the first steps cannot wreck the pretrained features.
        double done = static_cast<double>((epoch - 1) * stream.batches() + index + 1);
        if (done <= p.warmup_steps) m_c.optimizer.warm_up(done / p.warmup_steps);
      }
      m_c.optimizer.zero_grad();
      at::Tensor logits = m_c.net.forward(x).view({-1});
      tally.add(m_c.optimizer.step(logits, y, epoch, ++index), logits, y);
      progress.advance(static_cast<std::size_t>(y.size(0)));
      char suffix[48];
      std::snprintf(suffix, sizeof suffix, "loss %.4f", tally.loss());
      progress.set_suffix(suffix);
    }
    progress.finish();
    m_rows_seen += tally.seen;
    return tally.result();
  }

  Evaluation evaluate() override {
    m_c.net.eval();
    torch::NoGradGuard no_grad;
    BatchStream stream(m_c.val, in_order(m_c.val.size()), std::max(m_c.params.batch_size, 64),
                       nullptr, 0, m_c.norm, m_c.params.workers);
    Tally tally;
    Batch batch;
    while (stream.next(batch)) {
      at::Tensor x = to_network_input(batch.x, m_c.device), y = batch.y.to(m_c.device);
      at::Tensor logits = m_c.net.forward(x).view({-1});
      tally.add(at::binary_cross_entropy_with_logits(logits, y).item<double>(), logits, y);
    }
    return tally.result();
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
