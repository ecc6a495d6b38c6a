// THE preprocessing path shared by cd-train, cd-eval, cd-predict and cd-serve:
// decode bytes -> 8-bit RGB -> resize by policy -> float CHW. preprocess_into()
// is the composition (nn/image_tensor.h wraps it in a tensor); training calls
// the same three stages and inserts augmentation between resizing and
// normalising (tools/cd-train/augment.h). Nothing here needs LibTorch or
// OpenCV, so cd-prepare, cd-predict and cd-serve map neither.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "domain/rgb_image.h"

namespace cd {

enum class ResizePolicy { k_stretch, k_center_crop, k_letterbox };
// [0,1]; ImageNet mean/std; or (x - 127) / 128, as EfficientNet-Lite was trained
enum class Normalization { k_unit, k_imagenet, k_signed };

struct PreprocessSpec {
  int size = 224;
  ResizePolicy resize = ResizePolicy::k_stretch;
  Normalization norm = Normalization::k_unit;
};

std::string to_string(ResizePolicy policy);
std::string to_string(Normalization norm);
ResizePolicy parse_resize_policy(const std::string& name);  // UsageError
Normalization parse_normalization(const std::string& name);

// An image's format and size as its header states them, read without
// decoding: JPEG (SOF marker), PNG (IHDR), BMP (DIB header), WebP (VP8, VP8L
// or VP8X). nullopt for anything else, or a header too short to say.
struct ImageHeader {
  std::string format;
  std::uint32_t width = 0, height = 0;
};
std::optional<ImageHeader> read_image_header(std::string_view bytes);

// Stage 1: decodes JPEG/PNG/BMP/WebP bytes (grayscale, CMYK, alpha and
// 16-bit inputs included) into 8-bit RGB. Throws DataError with the reason:
// empty, truncated, not an image; BudgetError when the header declares more
// pixels than input_budget() allows (checked before any pixel is decoded).
// With min_side > 0 (the side the image will be resized to), a JPEG much
// larger than that is decoded at a reduced DCT-domain scale whose sides stay
// at least min_side: cheaper, and no detail the resize would keep is lost.
RgbImage decode_rgb(std::string_view bytes, int min_side = 0);
// An image file's bytes, within input_budget()'s bytes per file; a FIFO or
// device is refused. Throws DataError (BudgetError when over) naming the path.
std::string read_image_bytes(const std::string& path);
// Reads a file and decodes it; errors name the path.
RgbImage read_rgb(const std::string& path, int min_side = 0);

// Stage 2: brings any size and aspect to size x size by the policy.
RgbImage resize_by_policy(const RgbImage& rgb, int size, ResizePolicy policy);

// Stage 3: 8-bit RGB HWC -> 3*H*W normalised floats (CHW) written to dst.
// Pure C++, safe on loader threads while LibTorch's OpenMP pool runs the model.
void to_chw_floats(const RgbImage& rgb, Normalization norm, float* dst);

// Where one image's preprocessing time went (cd-serve's per-stage metrics).
struct PreprocessTiming {
  double decode_s = 0;      // stage 1
  double preprocess_s = 0;  // stages 2 and 3
};

// All three stages into dst (3 * spec.size^2 floats). Throws DataError.
// With timing, also reports the seconds spent decoding and after decoding.
void preprocess_into(std::string_view bytes, const PreprocessSpec& spec, float* dst,
                     PreprocessTiming* timing = nullptr);

// True for the extensions every tool accepts: jpg, jpeg, png, bmp, webp, any case.
bool has_image_extension(const std::string& path);

// True when the bytes look like a JPEG that is cut short (no EOI marker).
bool jpeg_truncated(std::string_view bytes);

}  // namespace cd
