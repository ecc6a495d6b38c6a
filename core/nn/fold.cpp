#include "nn/fold.h"

#include <ATen/Parallel.h>
#include <ATen/core/grad_mode.h>
#include <ATen/ops/mkldnn_convolution.h>
#include <torch/nn/modules/activation.h>

#include <algorithm>
#include <variant>
#include <vector>

namespace cd {

namespace nn = torch::nn;

namespace {

// A folded conv that runs through cd::conv2d (oneDNN at any thread count);
// to FLOPs counting and export it is still the Conv2dImpl it derives from.
class FoldedConv2dImpl : public nn::Conv2dImpl {
 public:
  explicit FoldedConv2dImpl(const nn::Conv2dImpl& folded)
      : nn::Conv2dImpl(nn::Conv2dOptions(folded.options.in_channels(),
                                         folded.options.out_channels(),
                                         folded.options.kernel_size())
                           .stride(folded.options.stride())
                           .padding(folded.options.padding())
                           .dilation(folded.options.dilation())
                           .groups(folded.options.groups())
                           .bias(true)) {
    torch::NoGradGuard no_grad;
    weight.copy_(folded.weight);
    bias.copy_(folded.bias);
    using std::get_if;  // c10::variant in LibTorch 1.x, std::variant in 2.x
    if (const auto* pad = get_if<torch::ExpandingArray<2>>(&options.padding()))
      m_padding.assign((*pad)->begin(), (*pad)->end());
  }

  at::Tensor forward(const at::Tensor& x) {
    if (m_padding.empty()) return nn::Conv2dImpl::forward(x);  // padding "same" / "valid"
    return cd::conv2d(x, weight, bias, *options.stride(), m_padding, *options.dilation(),
                      options.groups());
  }

 private:
  std::vector<std::int64_t> m_padding;
};

}  // namespace

// Returns a copy of seq where every conv followed by batch norm becomes one conv with a bias.
// The activation after a folded conv then works in place on the conv's fresh output: one
// activation-sized buffer less per layer, which is most of an inference pass's memory.
nn::Sequential fuse_conv_bn(nn::Sequential& seq) {
  nn::Sequential out;
  for (std::size_t i = 0; i < seq->size(); ++i) {
    auto* conv = seq[i]->as<nn::Conv2dImpl>();
    auto* bn = i + 1 < seq->size() ? seq[i + 1]->as<nn::BatchNorm2dImpl>() : nullptr;
    if (!conv || !bn) {
      out->push_back(seq->begin()[i]);
      continue;
    }
    out->push_back(std::make_shared<FoldedConv2dImpl>(*fold_batch_norm(*conv, *bn)));
    ++i;  // the batch norm is folded away
    if (i + 1 < seq->size()) {
      if (auto* leaky = seq[i + 1]->as<nn::LeakyReLUImpl>()) leaky->options.inplace(true);
      if (auto* relu = seq[i + 1]->as<nn::ReLUImpl>()) relu->options.inplace(true);
    }
  }
  return out;
}

nn::Conv2d fold_batch_norm(const nn::Conv2dImpl& conv, const nn::BatchNorm2dImpl& bn) {
  torch::NoGradGuard no_grad;
  const auto& o = conv.options;
  nn::Conv2d fused(nn::Conv2dOptions(o.in_channels(), o.out_channels(), o.kernel_size())
                       .stride(o.stride())
                       .padding(o.padding())
                       .dilation(o.dilation())
                       .groups(o.groups())
                       .bias(true));
  at::Tensor scale = bn.weight / (bn.running_var + bn.options.eps()).sqrt();
  at::Tensor bias = conv.bias.defined() ? conv.bias : at::zeros_like(bn.running_mean);
  fused->weight.copy_(conv.weight * scale.view({-1, 1, 1, 1}));
  fused->bias.copy_(bn.bias + (bias - bn.running_mean) * scale);
  return fused;
}

at::Tensor conv2d(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias,
                  at::IntArrayRef stride, at::IntArrayRef padding, at::IntArrayRef dilation,
                  std::int64_t groups) {
  auto ones = [](at::IntArrayRef v) {
    return std::all_of(v.begin(), v.end(), [](std::int64_t e) { return e == 1; });
  };
  // Exactly the case LibTorch 1.13 keeps from oneDNN; elsewhere at::conv2d
  // already picks it (and, measured, picks better at batch 64 on one thread).
  bool pointwise = weight.dim() == 4 && weight.size(2) == 1 && weight.size(3) == 1;
  bool onednn = pointwise && ones(stride) && ones(dilation) && x.dim() == 4 && x.size(0) < 16 &&
                at::get_num_threads() == 1 && at::hasMKLDNN() && !at::GradMode::is_enabled() &&
                x.device().is_cpu() && x.layout() == at::kStrided &&
                x.scalar_type() == at::kFloat && weight.scalar_type() == at::kFloat;
  if (!onednn) return at::conv2d(x, weight, bias, stride, padding, dilation, groups);
  // As at::conv2d does: channels-last when either side is.
  auto format = x.suggest_memory_format() == at::MemoryFormat::ChannelsLast ||
                        weight.suggest_memory_format() == at::MemoryFormat::ChannelsLast
                    ? at::MemoryFormat::ChannelsLast
                    : at::MemoryFormat::Contiguous;
  return at::mkldnn_convolution(x.contiguous(format), weight.contiguous(format), bias, padding,
                                stride, dilation, groups);
}

}  // namespace cd
