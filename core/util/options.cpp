#include "util/options.h"

#include "util/atomic_file.h"
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
  // The budgets sit in the same section as the thread count (run: in train.yaml).
  std::size_t dot = threads_key.rfind('.');
  std::string section = dot == std::string::npos ? "" : threads_key.substr(0, dot + 1);
  config.add_double(section + "max_megapixels", common.max_megapixels,
                    "largest image in megapixels, read from its header before decoding", 0.001,
                    10000.0, "max-megapixels");
  config.add_double(section + "max_file_mb", common.max_file_mb, "largest input image file in MB",
                    0.001, 100000.0, "max-file-mb");
  config.add_double(section + "max_decode_seconds", common.max_decode_seconds,
                    "CPU seconds one image's decoding may take, however few its bytes and pixels",
                    0.01, 3600.0, "max-decode-seconds");
  config.add_int(section + "max_jpeg_scans", common.max_jpeg_scans,
                 "most scans a progressive JPEG may have (photos have about 10)", 1, 100000,
                 "max-jpeg-scans");
  config.add_double(section + "max_decode_mb", common.max_decode_mb,
                    "MB of decoder buffers alive at once across threads; more waits its turn", 16.0,
                    1048576.0, "max-decode-mb");
}

int apply_common_options(const CommonOptions& common) {
  log::setup(common.log_level, common.log_format);
  input_budget().max_pixels = static_cast<std::uint64_t>(common.max_megapixels * 1e6);
  input_budget().max_file_bytes = static_cast<std::uint64_t>(common.max_file_mb * 1024 * 1024);
  input_budget().max_decode_seconds = common.max_decode_seconds;
  input_budget().max_jpeg_scans = common.max_jpeg_scans;
  input_budget().max_decode_bytes = static_cast<std::uint64_t>(common.max_decode_mb * 1024 * 1024);
  return common.threads > 0 ? common.threads : hardware_threads();
}

}  // namespace cd
