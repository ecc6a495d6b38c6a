#include "cd-train/strategy.h"

#include <ATen/ATen.h>

namespace cd {

void Tally::add(double batch_loss, const at::Tensor& logits, const at::Tensor& y) {
  double n = static_cast<double>(y.size(0));
  loss_sum += batch_loss * n;
  correct += ((logits > 0).to(at::kFloat) == y).sum().item<double>();
  p_dog_sum += logits.sigmoid().sum().item<double>();
  seen += n;
}

Tally Tally::over_ranks(Group& group) const {
  auto sums = sum_over_ranks(group, {loss_sum, correct, p_dog_sum, seen});
  return {sums[0], sums[1], sums[2], sums[3]};
}

std::unique_ptr<TrainStrategy> make_strategy(const TrainContext& context) {
  return context.params.mode == TrainMode::k_frozen ? make_frozen_strategy(context)
                                                    : make_image_strategy(context);
}

}  // namespace cd
