// Options every tool shares (--threads, --log-level, --log-format) and the
// start-up that applies them.
#pragma once

#include <string>

#include "catdog/config.h"

namespace cd {

struct CommonOptions {
  int threads = 0;  // 0: every core
  std::string log_level = "info";
  std::string log_format = "text";
};

// Registers the shared options; key_prefix places them in a YAML section
// ("run." puts threads under run: in train.yaml).
void add_common_options(Config& config, CommonOptions& common, const std::string& threads_key = "threads");

// Installs logging and sets LibTorch's and OpenCV's thread counts.
// Returns the thread count in effect.
int apply_common_options(const CommonOptions& common);

}  // namespace cd
