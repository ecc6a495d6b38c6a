// The image decoders behind decode_rgb (domain/image.h), one per format, each
// on its own library and none on OpenCV's imgcodecs (which drags GDAL, GDCM
// and HDF5 into every process that links it): JPEG on libjpeg-turbo, PNG on
// libpng, WebP on libwebp, BMP in bmp.cpp. Each returns 8-bit RGB (RgbImage) or throws
// DataError naming the format and the reason, and BudgetError when its work
// goes over DecodeWork's bounds. Internal to cd::domain.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "domain/rgb_image.h"

namespace cd::codecs {

// Unsigned integers at a byte offset, big- and little-endian; the caller has
// checked that the bytes are there.
inline std::uint32_t byte_at(std::string_view b, std::size_t at) {
  return static_cast<unsigned char>(b[at]);
}
inline std::uint32_t be16(std::string_view b, std::size_t at) {
  return (byte_at(b, at) << 8) | byte_at(b, at + 1);
}
inline std::uint32_t be32(std::string_view b, std::size_t at) {
  return (be16(b, at) << 16) | be16(b, at + 2);
}
inline std::uint32_t le16(std::string_view b, std::size_t at) {
  return byte_at(b, at) | (byte_at(b, at + 1) << 8);
}
inline std::uint32_t le24(std::string_view b, std::size_t at) {
  return le16(b, at) | (byte_at(b, at + 2) << 16);
}
inline std::uint32_t le32(std::string_view b, std::size_t at) {
  return le16(b, at) | (le16(b, at + 2) << 16);
}

// The work one decode may do beyond its pixels (input_budget()): CPU seconds
// on the decoding thread, and a progressive JPEG's scans. A file within every
// byte and pixel budget can still cost minutes: one small scan repeated
// thousands of times, each pass over every block. The decoders ask as they
// go (per row, per iMCU row, per chunk of input), so the bound holds whatever
// the format spends its time on.
class DecodeWork {
 public:
  DecodeWork();  // starts the clock; the bounds are input_budget()'s now
  bool over_time() const;
  bool over_scans(int scans) const;
  // The sentences a CostError says, naming the setting that raises the bound.
  std::string time_message() const;
  std::string scans_message() const;
  void check() const;  // throws CostError (a BudgetError) when over the CPU budget

 private:
  double m_start = 0, m_limit = 0;
  int m_max_scans = 0;
};

// Width and height from a JPEG's frame header (SOF), without decoding.
struct Size2 {
  std::uint32_t width = 0, height = 0;
};
std::optional<Size2> jpeg_size(std::string_view bytes);

// The components whose every coefficient libjpeg will hold at once (a
// progressive frame, or a first scan without every component); 0 when it
// decodes row by row.
int jpeg_buffered_components(std::string_view bytes);

// The bytes the decoder of an image with this header holds at its peak
// (output at the scale decode_jpeg picks, a progressive JPEG's coefficients,
// libwebp's lossless ARGB plane): what decode_rgb's memory gate counts.
std::uint64_t decode_memory_estimate(std::string_view bytes, const std::string& format,
                                     std::uint32_t width, std::uint32_t height, int min_side);

// EXIF orientation (1..8) from a JPEG's APP1 segment; 1 when there is none.
int exif_orientation(std::string_view bytes);

// A JPEG, upright. With min_side > 0 and a photo at least twice as large,
// decodes at the smallest DCT-domain scale (1/2, 1/4 or 1/8) that keeps both
// sides at least min_side: a phone photo costs a fraction of its full decode,
// and the resize that follows loses little it would have kept. Grayscale
// becomes RGB; CMYK and YCCK (Adobe's inverted ink values) are converted.
RgbImage decode_jpeg(std::string_view bytes, int min_side, const DecodeWork& work);

// 16-bit to 8 by the high byte, palette and gray expanded, alpha dropped.
// Text, ICC and other ancillary chunks are skipped unread.
RgbImage decode_png(std::string_view bytes, const DecodeWork& work);

// Lossy, lossless and extended (VP8X) still images; alpha dropped. Fed to
// libwebp's incremental decoder a slice at a time, the budget checked between.
RgbImage decode_webp(std::string_view bytes, const DecodeWork& work);

// Uncompressed BMP: 1/4/8-bit palettes, 16-bit (5-5-5 or bit fields), 24-bit,
// 32-bit (bit fields included), bottom-up or top-down. RLE is refused.
RgbImage decode_bmp(std::string_view bytes, const DecodeWork& work);

}  // namespace cd::codecs
