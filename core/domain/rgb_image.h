// 8-bit RGB pixels, and the few geometric operations the preprocessing path
// needs (resizing, turning, cropping), in plain C++: cd-predict and cd-serve
// map no OpenCV, whose libraries and their dependencies (BLAS, LAPACK, X11,
// OpenCL) cost about 8 ms of every cold start before main() ran.
#pragma once

#include <cstddef>
#include <memory>

namespace cd {

// width x height pixels, R, G, B bytes each, rows packed without padding.
// Move-only: an image is one buffer, handed along, never shared.
class RgbImage {
 public:
  RgbImage() = default;
  RgbImage(int width, int height);  // the pixels are left unset
  RgbImage(RgbImage&&) noexcept = default;
  RgbImage& operator=(RgbImage&&) noexcept = default;

  int width() const { return m_width; }
  int height() const { return m_height; }
  bool empty() const { return m_width == 0 || m_height == 0; }
  std::size_t stride() const { return static_cast<std::size_t>(m_width) * 3; }
  std::size_t size_bytes() const { return stride() * static_cast<std::size_t>(m_height); }
  unsigned char* data() { return m_pixels.get(); }
  const unsigned char* data() const { return m_pixels.get(); }
  unsigned char* row(int y) { return data() + stride() * static_cast<std::size_t>(y); }
  const unsigned char* row(int y) const { return data() + stride() * static_cast<std::size_t>(y); }

  RgbImage clone() const;
  void fill(unsigned char r, unsigned char g, unsigned char b);

 private:
  int m_width = 0, m_height = 0;
  std::unique_ptr<unsigned char[]> m_pixels;
};

// To width x height. Both sides shrinking: each output pixel is the average
// of the source area it covers (OpenCV's INTER_AREA), so no source pixel is
// skipped and fine detail does not alias. Otherwise bilinear, sampling at
// pixel centres (OpenCV's INTER_LINEAR, in the same 11-bit fixed point). Each
// output byte is within 1 of OpenCV's resize with those flags.
RgbImage resized(const RgbImage& src, int width, int height);

// The width x height window whose top-left corner is (x, y); the caller
// keeps it inside the image.
RgbImage cropped(const RgbImage& src, int x, int y, int width, int height);

// Copies src into dst with its top-left corner at (x, y), inside dst.
void paste(const RgbImage& src, RgbImage& dst, int x, int y);

// Turned and mirrored as EXIF orientation 2..8 asks, so it is upright; 1 (or
// anything else) leaves it as it is.
RgbImage reoriented(RgbImage src, int orientation);

}  // namespace cd
