#include "domain/rgb_image.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <utility>
#include <vector>

namespace cd {

RgbImage::RgbImage(int width, int height)
    : m_width(width),
      m_height(height),
      // new[] without (): a decoder writes every byte, so none is zeroed first
      m_pixels(new unsigned char[static_cast<std::size_t>(width) * 3 *
                                 static_cast<std::size_t>(height)]) {}

RgbImage RgbImage::clone() const {
  RgbImage copy(m_width, m_height);
  if (size_bytes()) std::memcpy(copy.data(), data(), size_bytes());
  return copy;
}

void RgbImage::fill(unsigned char r, unsigned char g, unsigned char b) {
  unsigned char* p = data();
  for (std::size_t i = 0, n = size_bytes(); i < n; i += 3) p[i] = r, p[i + 1] = g, p[i + 2] = b;
}

namespace {

unsigned char clamp_byte(int v) { return static_cast<unsigned char>(std::clamp(v, 0, 255)); }

// Area averaging along one axis: output d covers source [d*scale, (d+1)*scale),
// and each source cell it overlaps weighs by the overlap over scale, so the
// weights of one output sum to 1.
struct AreaTaps {
  std::vector<int> first;  // per output: where its taps start in index/weight
  std::vector<int> index;
  std::vector<float> weight;
};

AreaTaps area_taps(int src, int dst) {
  AreaTaps taps;
  double scale = static_cast<double>(src) / dst;
  for (int d = 0; d < dst; ++d) {
    taps.first.push_back(static_cast<int>(taps.index.size()));
    double begin = d * scale, end = std::min((d + 1) * scale, static_cast<double>(src));
    for (int i = static_cast<int>(begin); i < src && i < end; ++i) {
      double overlap = std::min(end, i + 1.0) - std::max(begin, static_cast<double>(i));
      if (overlap <= 1e-9) continue;
      taps.index.push_back(i);
      taps.weight.push_back(static_cast<float>(overlap / scale));
    }
  }
  taps.first.push_back(static_cast<int>(taps.index.size()));
  return taps;
}

RgbImage resized_by_area(const RgbImage& src, int width, int height) {
  AreaTaps xs = area_taps(src.width(), width), ys = area_taps(src.height(), height);
  const std::size_t n = static_cast<std::size_t>(width) * 3;
  std::vector<float> acc(n), scratch(n), cached(n);
  int cached_row = -1;
  auto horizontal = [&](const unsigned char* s, float* h) {
    for (int d = 0; d < width; ++d) {
      float r = 0, g = 0, b = 0;
      for (int t = xs.first[d]; t < xs.first[d + 1]; ++t) {
        const unsigned char* p = s + 3 * xs.index[t];
        float w = xs.weight[t];
        r += w * p[0], g += w * p[1], b += w * p[2];
      }
      h[3 * d] = r, h[3 * d + 1] = g, h[3 * d + 2] = b;
    }
  };
  RgbImage out(width, height);
  for (int y = 0; y < height; ++y) {
    std::fill(acc.begin(), acc.end(), 0.0f);
    for (int t = ys.first[y]; t < ys.first[y + 1]; ++t) {
      int row = ys.index[t];
      const float* h = cached.data();
      if (row != cached_row) {
        horizontal(src.row(row), scratch.data());
        h = scratch.data();
      }
      float w = ys.weight[t];
      for (std::size_t k = 0; k < n; ++k) acc[k] += w * h[k];
      // A source row on the border between two outputs is used by both:
      // the last one of this output is kept for the next.
      if (t + 1 == ys.first[y + 1] && row != cached_row) {
        std::swap(cached, scratch);
        cached_row = row;
      }
    }
    unsigned char* o = out.row(y);
    for (std::size_t k = 0; k < n; ++k) o[k] = clamp_byte(static_cast<int>(acc[k] + 0.5f));
  }
  return out;
}

// Bilinear along one axis: output d samples the source at (d + 0.5) * scale
// - 0.5, from cells i0 and i1 with weights c0 + c1 = 2048 (11 bits).
struct LinearTap {
  int i0, i1, c0, c1;
};
constexpr int k_coef_bits = 11;

std::vector<LinearTap> linear_taps(int src, int dst) {
  std::vector<LinearTap> taps(static_cast<std::size_t>(dst));
  float scale = static_cast<float>(static_cast<double>(src) / dst);
  for (int d = 0; d < dst; ++d) {
    float f = (d + 0.5f) * scale - 0.5f;
    int i = static_cast<int>(std::floor(f));
    f -= static_cast<float>(i);
    if (i < 0) i = 0, f = 0;
    if (i >= src - 1) i = src - 1, f = 0;
    int c1 = static_cast<int>(std::lround(f * (1 << k_coef_bits)));
    taps[static_cast<std::size_t>(d)] = {i, std::min(i + 1, src - 1), (1 << k_coef_bits) - c1, c1};
  }
  return taps;
}

RgbImage resized_bilinear(const RgbImage& src, int width, int height) {
  std::vector<LinearTap> xs = linear_taps(src.width(), width),
                         ys = linear_taps(src.height(), height);
  const std::size_t n = static_cast<std::size_t>(width) * 3;
  // The horizontal pass of two source rows at a time, 22-bit fixed point.
  std::vector<std::int32_t> rows[2] = {std::vector<std::int32_t>(n), std::vector<std::int32_t>(n)};
  int row_of[2] = {-1, -1};
  auto horizontal = [&](int row, int keep) -> const std::int32_t* {
    for (int slot = 0; slot < 2; ++slot)
      if (row_of[slot] == row) return rows[slot].data();
    int slot = row_of[0] == keep ? 1 : 0;
    const unsigned char* s = src.row(row);
    std::int32_t* h = rows[slot].data();
    for (int d = 0; d < width; ++d) {
      const LinearTap& t = xs[static_cast<std::size_t>(d)];
      for (int ch = 0; ch < 3; ++ch)
        h[3 * d + ch] = s[3 * t.i0 + ch] * t.c0 + s[3 * t.i1 + ch] * t.c1;
    }
    row_of[slot] = row;
    return h;
  };
  RgbImage out(width, height);
  for (int y = 0; y < height; ++y) {
    const LinearTap& t = ys[static_cast<std::size_t>(y)];
    const std::int32_t* h0 = horizontal(t.i0, t.i1);
    const std::int32_t* h1 = horizontal(t.i1, t.i0);
    unsigned char* o = out.row(y);
    // OpenCV's rounding, in steps: 7 fraction bits of each row times the
    // 11-bit weight, high 16 bits kept, then the last 2 rounded off.
    for (std::size_t k = 0; k < n; ++k)
      o[k] = clamp_byte((((h0[k] >> 4) * t.c0 >> 16) + ((h1[k] >> 4) * t.c1 >> 16) + 2) >> 2);
  }
  return out;
}

}  // namespace

RgbImage resized(const RgbImage& src, int width, int height) {
  if (width == src.width() && height == src.height()) return src.clone();
  if (width <= src.width() && height <= src.height()) return resized_by_area(src, width, height);
  return resized_bilinear(src, width, height);
}

RgbImage cropped(const RgbImage& src, int x, int y, int width, int height) {
  RgbImage out(width, height);
  for (int r = 0; r < height; ++r)
    std::memcpy(out.row(r), src.row(y + r) + 3 * static_cast<std::size_t>(x), out.stride());
  return out;
}

void paste(const RgbImage& src, RgbImage& dst, int x, int y) {
  for (int r = 0; r < src.height(); ++r)
    std::memcpy(dst.row(y + r) + 3 * static_cast<std::size_t>(x), src.row(r), src.stride());
}

RgbImage reoriented(RgbImage src, int orientation) {
  if (orientation < 2 || orientation > 8) return src;
  const int w = src.width(), h = src.height();
  const bool transposed = orientation >= 5;
  RgbImage out(transposed ? h : w, transposed ? w : h);
  // Output (x, y) reads source column sx, row sy.
  for (int y = 0; y < out.height(); ++y) {
    unsigned char* o = out.row(y);
    for (int x = 0; x < out.width(); ++x, o += 3) {
      int sx = x, sy = y;
      switch (orientation) {
        case 2:  // mirrored
          sx = w - 1 - x;
          break;
        case 3:  // upside down
          sx = w - 1 - x, sy = h - 1 - y;
          break;
        case 4:  // mirrored upside down
          sy = h - 1 - y;
          break;
        case 5:  // mirrored about the main diagonal
          sx = y, sy = x;
          break;
        case 6:  // needs a quarter turn clockwise
          sx = y, sy = h - 1 - x;
          break;
        case 7:  // mirrored about the other diagonal
          sx = w - 1 - y, sy = h - 1 - x;
          break;
        default:  // 8: needs a quarter turn anticlockwise
          sx = w - 1 - y, sy = x;
          break;
      }
      const unsigned char* s = src.row(sy) + 3 * static_cast<std::size_t>(sx);
      o[0] = s[0], o[1] = s[1], o[2] = s[2];
    }
  }
  return out;
}

}  // namespace cd
