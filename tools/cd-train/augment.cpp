#include "cd-train/augment.h"

#include <cmath>
#include <random>

#include <opencv2/core.hpp>
#include <opencv2/core/utility.hpp>
#include <opencv2/imgproc.hpp>

#include "util/random.h"

namespace cd {

void keep_opencv_single_threaded() { cv::setNumThreads(1); }

RgbImage augment(const RgbImage& rgb, const Augmentation& aug, std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  double angle = uniform(rng, -aug.rotation_deg, aug.rotation_deg);
  double tx = uniform(rng, -aug.shift, aug.shift) * rgb.width();
  double ty = uniform(rng, -aug.shift, aug.shift) * rgb.height();
  double zx = uniform(rng, 1.0 - aug.zoom, 1.0 + aug.zoom);
  double zy = uniform(rng, 1.0 - aug.zoom, 1.0 + aug.zoom);
  bool flip = aug.hflip && (rng() & 1);
  // Keras' zoom z < 1 magnifies: the sampled window shrinks, so scale by 1/z.
  double rad = angle * M_PI / 180.0;
  double cx = rgb.width() / 2.0, cy = rgb.height() / 2.0;
  double a = std::cos(rad) / zx, b = std::sin(rad) / zy;
  double c = -std::sin(rad) / zx, d = std::cos(rad) / zy;
  cv::Mat m = (cv::Mat_<double>(2, 3) << a, b, cx + tx - a * cx - b * cy,  //
               c, d, cy + ty - c * cx - d * cy);
  // OpenCV headers over catdog's buffers: no copy in, none out.
  cv::Mat in(rgb.height(), rgb.width(), CV_8UC3, const_cast<unsigned char*>(rgb.data()));
  RgbImage result(rgb.width(), rgb.height());
  cv::Mat out(result.height(), result.width(), CV_8UC3, result.data());
  cv::warpAffine(in, out, m, in.size(), cv::INTER_LINEAR, cv::BORDER_REPLICATE);
  if (flip) cv::flip(out, out, 1);
  return result;
}

}  // namespace cd
