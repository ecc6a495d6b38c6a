#include "util/options.h"

#include "util/log.h"
#include "util/parallel.h"

namespace cd {

void add_common_options(Config& config, CommonOptions& common, const std::string& threads_key) {
  config.add_int(threads_key, common.threads, "compute threads; 0 uses every core", 0, 1024,
                 "threads");
  config.add_choice("log_level", common.log_level, "log verbosity",
                    {"trace", "debug", "info", "warn", "error"}, "log-level");
  config.add_choice("log_format", common.log_format, "log line format", {"text", "json"},
                    "log-format");
}

int apply_common_options(const CommonOptions& common) {
  log::setup(common.log_level, common.log_format);
  return common.threads > 0 ? common.threads : hardware_threads();
}

}  // namespace cd
