// OpenCV as the independent reference the image tests compare catdog's own
// decoders and resizers with, and the committed fixtures they read.
#pragma once

#include <cstring>
#include <string>
#include <string_view>

#include <catch2/catch.hpp>
#include <opencv2/core.hpp>

#include "domain/image.h"
#include "helpers.h"
#include "util/atomic_file.h"

namespace cd::test {

inline std::string fixture(const std::string& rel) {
  return cd::read_file(source_path("tests/fixtures/" + rel));
}

// catdog's pixels as an OpenCV matrix (a copy), and back.
inline cv::Mat mat(const cd::RgbImage& rgb) {
  return cv::Mat(rgb.height(), rgb.width(), CV_8UC3, const_cast<unsigned char*>(rgb.data()))
      .clone();
}
inline cd::RgbImage rgb_of(const cv::Mat& m) {
  REQUIRE(m.type() == CV_8UC3);
  cd::RgbImage out(m.cols, m.rows);
  for (int y = 0; y < m.rows; ++y) std::memcpy(out.row(y), m.ptr(y), out.stride());
  return out;
}
inline cv::Mat decoded(std::string_view bytes, int min_side = 0) {
  return mat(cd::decode_rgb(bytes, min_side));
}
inline cv::Mat resized(const cv::Mat& m, int size, cd::ResizePolicy policy) {
  return mat(cd::resize_by_policy(rgb_of(m), size, policy));
}

}  // namespace cd::test
