#include "nn/image_tensor.h"

#include <ATen/ATen.h>

namespace cd {

at::Tensor to_tensor(const RgbImage& rgb, Normalization norm) {
  at::Tensor chw = at::empty({3, rgb.height(), rgb.width()}, at::kFloat);
  to_chw_floats(rgb, norm, chw.data_ptr<float>());
  return chw;
}

at::Tensor preprocess(std::string_view bytes, const PreprocessSpec& spec,
                      PreprocessTiming* timing) {
  at::Tensor chw = at::empty({3, spec.size, spec.size}, at::kFloat);
  preprocess_into(bytes, spec, chw.data_ptr<float>(), timing);
  return chw;
}

}  // namespace cd
