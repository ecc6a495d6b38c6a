#include "domain/image.h"

#include <malloc.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <filesystem>
#include <limits>
#include <mutex>

#include "domain/codecs.h"
#include "util/atomic_file.h"
#include "util/errors.h"
#include "util/strings.h"

namespace cd {

namespace {

using codecs::be16;
using codecs::be32;
using codecs::le16;
using codecs::le24;
using codecs::le32;

bool is_jpeg(std::string_view b) { return starts_with(b, "\xFF\xD8\xFF"); }
bool is_png(std::string_view b) { return starts_with(b, "\x89PNG\r\n\x1a\n"); }

bool png_truncated(std::string_view bytes) {
  std::size_t tail = std::min<std::size_t>(bytes.size(), 16);
  return bytes.substr(bytes.size() - tail).find("IEND") == std::string_view::npos;
}

// The decoders' buffers alive at once, across threads, within
// input_budget().max_decode_bytes: a decode whose estimate does not fit waits
// until enough others have finished; one alone always runs. With
// return_decode_memory set (cd-serve), the last decode of a burst gives the
// heap's free pages back to the system: glibc keeps freed memory mapped, and
// after 16 concurrent 36 MP uploads that was ~700 MB of idle RSS.
class DecodeMemory {
 public:
  static DecodeMemory& instance() {
    static DecodeMemory gate;
    return gate;
  }
  std::uint64_t acquire(std::uint64_t bytes) {
    std::unique_lock<std::mutex> lock(m_mutex);
    bytes = std::min(bytes, input_budget().max_decode_bytes);
    m_cv.wait(lock,
              [&] { return m_running == 0 || m_used + bytes <= input_budget().max_decode_bytes; });
    m_used += bytes;
    ++m_running;
    return bytes;
  }
  void release(std::uint64_t bytes) {
    bool trim = false;
    {
      std::lock_guard<std::mutex> lock(m_mutex);
      m_used -= bytes;
      --m_running;
      m_since_trim += bytes;
      trim = m_running == 0 && input_budget().return_decode_memory && m_since_trim >= k_trim_after;
      if (trim) m_since_trim = 0;
    }
    m_cv.notify_all();
    if (trim) malloc_trim(0);
  }

 private:
  static constexpr std::uint64_t k_trim_after = std::uint64_t{64} << 20;
  std::mutex m_mutex;
  std::condition_variable m_cv;
  std::uint64_t m_used = 0, m_since_trim = 0;
  int m_running = 0;
};

// A decode's place in the memory gate, held while the decoder runs: in
// preprocess_into until the full-size pixels are freed too; decode_rgb's
// callers (cd-prepare, training's loaders) hold the image a moment longer.
class DecodeTicket {
 public:
  explicit DecodeTicket(std::uint64_t bytes) : m_bytes(DecodeMemory::instance().acquire(bytes)) {}
  ~DecodeTicket() { DecodeMemory::instance().release(m_bytes); }
  DecodeTicket(const DecodeTicket&) = delete;
  DecodeTicket& operator=(const DecodeTicket&) = delete;

 private:
  std::uint64_t m_bytes;
};

// The checks decode_rgb makes before any pixel is decoded; the header.
ImageHeader checked_header(std::string_view bytes);

std::uint64_t memory_estimate(std::string_view bytes, const ImageHeader& h, int min_side) {
  return codecs::decode_memory_estimate(bytes, h.format, h.width, h.height, min_side);
}

RgbImage decode_checked(std::string_view bytes, const ImageHeader& header, int min_side) {
  codecs::DecodeWork work;
  if (header.format == "jpeg") return codecs::decode_jpeg(bytes, min_side, work);
  if (header.format == "png") return codecs::decode_png(bytes, work);
  if (header.format == "webp") return codecs::decode_webp(bytes, work);
  return codecs::decode_bmp(bytes, work);
}

}  // namespace

std::optional<ImageHeader> read_image_header(std::string_view b) {
  if (is_jpeg(b)) {
    auto size = codecs::jpeg_size(b);
    if (!size) return std::nullopt;
    return ImageHeader{"jpeg", size->width, size->height};
  }
  if (is_png(b)) {
    if (b.size() < 24 || b.substr(12, 4) != "IHDR") return std::nullopt;
    return ImageHeader{"png", be32(b, 16), be32(b, 20)};
  }
  if (starts_with(b, "BM") && b.size() >= 26) {
    std::uint32_t dib = le32(b, 14);
    if (dib == 12) return ImageHeader{"bmp", le16(b, 18), le16(b, 20)};
    auto height = static_cast<std::int32_t>(le32(b, 22));  // negative: stored top-down
    auto width = static_cast<std::int32_t>(le32(b, 18));
    if (dib < 40 || width < 0 || height == std::numeric_limits<std::int32_t>::min())
      return std::nullopt;
    return ImageHeader{"bmp", static_cast<std::uint32_t>(width),
                       static_cast<std::uint32_t>(height < 0 ? -height : height)};
  }
  if (b.size() >= 30 && starts_with(b, "RIFF") && b.substr(8, 4) == "WEBP") {
    std::string_view chunk = b.substr(12, 4);
    if (chunk == "VP8 " && b.substr(23, 3) == "\x9d\x01\x2a")
      return ImageHeader{"webp", le16(b, 26) & 0x3FFF, le16(b, 28) & 0x3FFF};
    if (chunk == "VP8L" && static_cast<unsigned char>(b[20]) == 0x2F) {
      std::uint32_t bits = le32(b, 21);
      return ImageHeader{"webp", (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1};
    }
    if (chunk == "VP8X") return ImageHeader{"webp", le24(b, 24) + 1, le24(b, 27) + 1};
  }
  return std::nullopt;
}

std::string to_string(ResizePolicy policy) {
  switch (policy) {
    case ResizePolicy::k_stretch:
      return "stretch";
    case ResizePolicy::k_center_crop:
      return "center-crop";
    case ResizePolicy::k_letterbox:
      return "letterbox";
  }
  return "stretch";
}

std::string to_string(Normalization norm) {
  switch (norm) {
    case Normalization::k_unit:
      return "unit";
    case Normalization::k_imagenet:
      return "imagenet";
    case Normalization::k_signed:
      return "signed";
  }
  return "unit";
}

ResizePolicy parse_resize_policy(const std::string& name) {
  if (name == "stretch") return ResizePolicy::k_stretch;
  if (name == "center-crop") return ResizePolicy::k_center_crop;
  if (name == "letterbox") return ResizePolicy::k_letterbox;
  throw UsageError("resize policy '" + name +
                   "' is not known; allowed: stretch|center-crop|letterbox");
}

Normalization parse_normalization(const std::string& name) {
  if (name == "unit") return Normalization::k_unit;
  if (name == "imagenet") return Normalization::k_imagenet;
  if (name == "signed") return Normalization::k_signed;
  throw UsageError("normalization '" + name + "' is not known; allowed: unit|imagenet|signed");
}

bool has_image_extension(const std::string& path) {
  std::string ext = to_lower(std::filesystem::path(path).extension().string());
  return ext == ".jpg" || ext == ".jpeg" || ext == ".png" || ext == ".bmp" || ext == ".webp";
}

bool jpeg_truncated(std::string_view bytes) {
  if (!is_jpeg(bytes)) return false;
  // Inside entropy-coded data every 0xFF is stuffed, so the end-of-image marker
  // can only appear as a marker: it must follow the last start-of-scan.
  std::size_t sos = bytes.rfind("\xFF\xDA");
  if (sos == std::string_view::npos) return true;
  return bytes.find("\xFF\xD9", sos) == std::string_view::npos;
}

namespace {

ImageHeader checked_header(std::string_view bytes) {
  if (bytes.empty()) throw DataError("empty file (0 bytes)");
  if (jpeg_truncated(bytes)) throw DataError("truncated JPEG (no end-of-image marker)");
  if (is_png(bytes) && png_truncated(bytes)) throw DataError("truncated PNG (no IEND chunk)");
  // The size comes from the header, so a small file declaring a huge image
  // (a decompression bomb) is refused before any pixel buffer exists.
  auto header = read_image_header(bytes);
  if (!header) throw DataError("not a decodable image (expected JPEG, PNG, BMP or WebP)");
  if (header->width == 0 || header->height == 0)
    throw DataError("the " + header->format + " header declares an empty image");
  std::uint64_t pixels = std::uint64_t{header->width} * header->height;
  if (pixels > input_budget().max_pixels)
    throw BudgetError("the " + header->format + " header declares " +
                      std::to_string(header->width) + "x" + std::to_string(header->height) +
                      " pixels, over the budget of " + std::to_string(input_budget().max_pixels) +
                      " (--max-megapixels raises it)");
  return *header;
}

}  // namespace

RgbImage decode_rgb(std::string_view bytes, int min_side) {
  ImageHeader header = checked_header(bytes);
  DecodeTicket ticket(memory_estimate(bytes, header, min_side));
  return decode_checked(bytes, header, min_side);
}

std::string read_image_bytes(const std::string& path) {
  std::uint64_t limit = input_budget().max_file_bytes;
  try {
    return read_file(path, limit);
  } catch (const BudgetError& e) {
    throw BudgetError(std::string(e.what()) + " (--max-file-mb raises it)");
  } catch (const IoError& e) {
    throw DataError(e.what());
  }
}

RgbImage read_rgb(const std::string& path, int min_side) {
  std::string bytes = read_image_bytes(path);
  try {
    return decode_rgb(bytes, min_side);
  } catch (const BudgetError& e) {
    throw BudgetError("'" + path + "': " + e.what());
  } catch (const DataError& e) {
    throw DataError("'" + path + "': " + e.what());
  }
}

RgbImage resize_by_policy(const RgbImage& rgb, int size, ResizePolicy policy) {
  if (policy == ResizePolicy::k_stretch) return resized(rgb, size, size);
  double scale_short = static_cast<double>(size) / std::min(rgb.width(), rgb.height());
  double scale_long = static_cast<double>(size) / std::max(rgb.width(), rgb.height());
  if (policy == ResizePolicy::k_center_crop) {
    int w = std::max(size, static_cast<int>(std::lround(rgb.width() * scale_short)));
    int h = std::max(size, static_cast<int>(std::lround(rgb.height() * scale_short)));
    return cropped(resized(rgb, w, h), (w - size) / 2, (h - size) / 2, size, size);
  }
  int w = std::max(1, static_cast<int>(std::lround(rgb.width() * scale_long)));
  int h = std::max(1, static_cast<int>(std::lround(rgb.height() * scale_long)));
  RgbImage canvas(size, size);
  canvas.fill(128, 128, 128);
  paste(resized(rgb, w, h), canvas, (size - w) / 2, (size - h) / 2);
  return canvas;
}

void to_chw_floats(const RgbImage& rgb, Normalization norm, float* dst) {
  static const float k_mean[3] = {0.485f, 0.456f, 0.406f};
  static const float k_std[3] = {0.229f, 0.224f, 0.225f};
  float scale[3], offset[3];
  for (int ch = 0; ch < 3; ++ch) {
    switch (norm) {
      case Normalization::k_unit:
        scale[ch] = 1.0f / 255.0f, offset[ch] = 0.0f;
        break;
      case Normalization::k_imagenet:
        scale[ch] = 1.0f / (255.0f * k_std[ch]), offset[ch] = -k_mean[ch] / k_std[ch];
        break;
      case Normalization::k_signed:
        scale[ch] = 1.0f / 128.0f, offset[ch] = -127.0f / 128.0f;
        break;
    }
  }
  const std::size_t plane = static_cast<std::size_t>(rgb.height()) * rgb.width();
  for (int y = 0; y < rgb.height(); ++y) {
    const unsigned char* row = rgb.row(y);
    std::size_t base = static_cast<std::size_t>(y) * rgb.width();
    for (int x = 0; x < rgb.width(); ++x)
      for (int ch = 0; ch < 3; ++ch)
        dst[ch * plane + base + x] = row[3 * x + ch] * scale[ch] + offset[ch];
  }
}

void preprocess_into(std::string_view bytes, const PreprocessSpec& spec, float* dst,
                     PreprocessTiming* timing) {
  using clock = std::chrono::steady_clock;
  auto t0 = clock::now();
  ImageHeader header = checked_header(bytes);
  clock::time_point t1;
  RgbImage scaled;
  {  // the gate is held until the full-size pixels are freed
    DecodeTicket ticket(memory_estimate(bytes, header, spec.size));
    RgbImage rgb = decode_checked(bytes, header, spec.size);
    t1 = clock::now();
    scaled = resize_by_policy(rgb, spec.size, spec.resize);
  }
  to_chw_floats(scaled, spec.norm, dst);
  if (timing) {
    timing->decode_s = std::chrono::duration<double>(t1 - t0).count();
    timing->preprocess_s = std::chrono::duration<double>(clock::now() - t1).count();
  }
}

}  // namespace cd
