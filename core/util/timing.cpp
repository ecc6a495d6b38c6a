#include "util/timing.h"

#include <unistd.h>

#include <chrono>
#include <fstream>
#include <sstream>
#include <string>

namespace cd {

namespace {

double kernel_ms_since_start() {
  std::ifstream stat("/proc/self/stat");
  std::string text((std::istreambuf_iterator<char>(stat)), std::istreambuf_iterator<char>());
  // Field 22 is starttime in clock ticks after boot; fields after the ")" of comm are
  // space-separated.
  std::istringstream rest(text.substr(text.rfind(')') + 2));
  std::string field;
  for (int i = 3; i <= 22 && rest >> field; ++i) {
  }
  double start_s = std::stod(field) / static_cast<double>(sysconf(_SC_CLK_TCK));
  std::ifstream uptime("/proc/uptime");
  double up_s = 0;
  uptime >> up_s;
  return (up_s - start_s) * 1000.0;
}

}  // namespace

double ms_since_process_start() {
  // The kernel's clocks tick in 10 ms; the first call anchors them, and later
  // calls add the monotonic clock's time since, so differences are exact.
  static const auto anchor_clock = std::chrono::steady_clock::now();
  static const double anchor_ms = kernel_ms_since_start();
  return anchor_ms +
         std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - anchor_clock)
             .count();
}

}  // namespace cd
