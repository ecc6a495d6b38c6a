// Training-time augmentation, the one image operation that still runs on
// OpenCV (an affine warp with border replication): only cd-train links it.
#pragma once

#include <cstdint>

#include "domain/rgb_image.h"

namespace cd {

// Random affine augmentation with Keras ImageDataGenerator's meaning:
// rotation in degrees, shifts as fractions of the side, zoom as +-fraction.
struct Augmentation {
  double rotation_deg = 20.0;
  double shift = 0.2;
  double zoom = 0.2;
  bool hflip = true;
  bool enabled() const { return rotation_deg > 0 || shift > 0 || zoom > 0 || hflip; }
};

// Deterministic for a given seed, so runs and resumes are reproducible
// whatever thread did the work.
RgbImage augment(const RgbImage& rgb, const Augmentation& aug, std::uint64_t seed);

// OpenCV's own thread pool stays off: the loader parallelises over images.
void keep_opencv_single_threaded();

}  // namespace cd
