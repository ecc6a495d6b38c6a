// BMP, decoded here: the format is simple enough that a library would only
// add a dependency (domain/codecs.h).
#include <algorithm>
#include <array>
#include <string>
#include <vector>

#include "domain/codecs.h"
#include "util/errors.h"

namespace cd::codecs {

namespace {

// A channel of a 16- or 32-bit BMP pixel by its bit mask, as 8 bits.
struct MaskedChannel {
  std::uint32_t mask = 0;
  int shift = 0, bits = 0;
  explicit MaskedChannel(std::uint32_t m) : mask(m) {
    if (!m) return;
    while (!((m >> shift) & 1)) ++shift;
    while (bits < 32 - shift && ((m >> (shift + bits)) & 1)) ++bits;
  }
  unsigned char operator()(std::uint32_t pixel) const {
    if (!bits) return 0;
    std::uint32_t v = (pixel & mask) >> shift;
    if (bits >= 8) return static_cast<unsigned char>(v >> (bits - 8));
    return static_cast<unsigned char>(v * 255 / ((1u << bits) - 1));
  }
};

}  // namespace

RgbImage decode_bmp(std::string_view b, const DecodeWork& work) {
  auto bad = [](const std::string& why) { return DataError("not a decodable BMP (" + why + ")"); };
  if (b.size() < 26) throw bad("header cut short");
  std::uint32_t offset = le32(b, 10), dib = le32(b, 14);
  std::int64_t width = 0, height = 0;
  std::uint32_t bpp = 0, compression = 0, colors = 0, entry = 4;
  std::uint32_t masks[3] = {0, 0, 0};
  if (dib == 12) {  // OS/2 core header: 16-bit sizes, 3-byte palette entries
    width = le16(b, 18), height = le16(b, 20), bpp = le16(b, 24), entry = 3;
  } else if (dib >= 40 && b.size() >= 54) {
    width = static_cast<std::int32_t>(le32(b, 18));
    height = static_cast<std::int32_t>(le32(b, 22));
    bpp = le16(b, 28), compression = le32(b, 30), colors = le32(b, 46);
    if (compression == 3 || compression == 6) {  // bit fields: in V4/V5 headers, or after a V3 one
      if (b.size() < 66) throw bad("bit field masks cut short");
      masks[0] = le32(b, 54), masks[1] = le32(b, 58), masks[2] = le32(b, 62);
    }
  } else {
    throw bad("header of " + std::to_string(dib) + " bytes is not a known kind");
  }
  if (compression == 1 || compression == 2)
    throw DataError("run-length encoded BMP is not supported; convert it to PNG or JPEG");
  if (compression != 0 && compression != 3 && compression != 6)
    throw bad("compression method " + std::to_string(compression) + " is not supported");
  if (compression != 0 && bpp != 16 && bpp != 32) throw bad("bit fields need 16 or 32 bits");
  if (bpp != 1 && bpp != 4 && bpp != 8 && bpp != 16 && bpp != 24 && bpp != 32)
    throw bad(std::to_string(bpp) + " bits per pixel is not supported");
  if (width <= 0 || height == 0 || height == INT32_MIN) throw bad("empty image");
  bool top_down = height < 0;
  std::int64_t rows = top_down ? -height : height;
  std::uint64_t stride = (static_cast<std::uint64_t>(width) * bpp + 31) / 32 * 4;
  if (offset > b.size() || (b.size() - offset) / stride < static_cast<std::uint64_t>(rows))
    throw bad("pixel data cut short");

  std::vector<std::array<unsigned char, 3>> palette;  // RGB
  if (bpp <= 8) {
    std::size_t start = 14 + std::size_t{dib}, count = colors ? colors : 1u << bpp;
    count = std::min<std::size_t>(count, 1u << bpp);
    if (offset > start) count = std::min<std::size_t>(count, (offset - start) / entry);
    for (std::size_t i = 0; i < count && start + entry * (i + 1) <= b.size(); ++i) {
      std::size_t at = start + entry * i;
      palette.push_back({static_cast<unsigned char>(byte_at(b, at + 2)),
                         static_cast<unsigned char>(byte_at(b, at + 1)),
                         static_cast<unsigned char>(byte_at(b, at))});
    }
    if (palette.empty()) throw bad("no colour table");
  }
  if (compression == 0 && bpp == 16) masks[0] = 0x7C00, masks[1] = 0x03E0, masks[2] = 0x001F;
  if (compression == 0 && bpp == 32) masks[0] = 0xFF0000, masks[1] = 0xFF00, masks[2] = 0xFF;
  MaskedChannel channels[3] = {MaskedChannel(masks[0]), MaskedChannel(masks[1]),
                               MaskedChannel(masks[2])};

  RgbImage rgb(static_cast<int>(width), static_cast<int>(rows));
  for (std::int64_t r = 0; r < rows; ++r) {
    if (r % 64 == 63) work.check();
    std::string_view row = b.substr(offset + stride * r, stride);
    unsigned char* out = rgb.row(static_cast<int>(top_down ? r : rows - 1 - r));
    for (std::int64_t x = 0; x < width; ++x, out += 3) {
      if (bpp == 24) {
        out[0] = static_cast<unsigned char>(byte_at(row, 3 * x + 2));
        out[1] = static_cast<unsigned char>(byte_at(row, 3 * x + 1));
        out[2] = static_cast<unsigned char>(byte_at(row, 3 * x));
      } else if (bpp >= 16) {
        std::uint32_t pixel = bpp == 16 ? le16(row, 2 * x) : le32(row, 4 * x);
        for (int ch = 0; ch < 3; ++ch) out[ch] = channels[ch](pixel);
      } else {
        std::uint64_t bit = static_cast<std::uint64_t>(x) * bpp;
        std::uint32_t index = (byte_at(row, bit / 8) >> (8 - bpp - bit % 8)) & ((1u << bpp) - 1);
        std::array<unsigned char, 3> colour{0, 0, 0};
        if (index < palette.size()) colour = palette[index];
        out[0] = colour[0], out[1] = colour[1], out[2] = colour[2];
      }
    }
  }
  return rgb;
}

}  // namespace cd::codecs
