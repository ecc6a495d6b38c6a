// Options every tool shares (--threads, --log-level, --log-format) and the
// start-up that applies them.
#pragma once

#include <string>

#include "util/config.h"

namespace cd {

struct CommonOptions {
  int threads = 0;  // 0: every core
  std::string log_level = "info";
  std::string log_format = "text";
  double max_megapixels = 40;       // pixels per image, from its header (util/atomic_file.h)
  double max_file_mb = 64;          // bytes per input file
  double max_decode_seconds = 1.0;  // CPU one image's decoding may take
  int max_jpeg_scans = 64;          // scans of a progressive JPEG
  double max_decode_mb = 512;       // decoder buffers alive at once, all threads
};

// Registers the shared options; threads_key places --threads in a YAML
// section ("run.threads" puts it under run: in train.yaml).
void add_common_options(Config& config, CommonOptions& common,
                        const std::string& threads_key = "threads");

// Installs logging and returns the thread count in effect (every core for 0).
// Tools that run LibTorch pass it on to set_compute_threads (nn/compute.h).
int apply_common_options(const CommonOptions& common);

}  // namespace cd
