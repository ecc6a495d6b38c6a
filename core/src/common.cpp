#include "catdog/common.h"

#include <ATen/Parallel.h>

#include <opencv2/core/utility.hpp>
#include <thread>

#include "catdog/log.h"

namespace cd {

void add_common_options(Config& config, CommonOptions& common, const std::string& threads_key) {
  config.add_int(threads_key, common.threads, "compute threads; 0 uses every core", 0, 1024, "threads");
  config.add_choice("log_level", common.log_level, "log verbosity",
                    {"trace", "debug", "info", "warn", "error"}, "log-level");
  config.add_choice("log_format", common.log_format, "log line format", {"text", "json"}, "log-format");
}

int apply_common_options(const CommonOptions& common) {
  log::setup(common.log_level, common.log_format);
  int threads = common.threads > 0 ? common.threads
                                   : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  // LibTorch defaults to a single thread on this VM kind (PERF-NOTES.md).
  at::set_num_threads(threads);
  cv::setNumThreads(1);
  return threads;
}

}  // namespace cd
