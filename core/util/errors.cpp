#include "util/errors.h"

#include <malloc.h>

#include <cstdio>
#include <exception>

namespace cd {

namespace {

// Page faults cost ~12 us per page on this VM kind; glibc's default thresholds
// hand LibTorch's large buffers back to the OS every step, which made training
// 7-10x slower (PERF-NOTES.md). Keep them mapped.
void keep_large_allocations() {
  mallopt(M_MMAP_THRESHOLD, 1 << 30);
  mallopt(M_TRIM_THRESHOLD, 1 << 30);
}

}  // namespace

int run_tool(const char* tool, int argc, char** argv, const std::function<int(int, char**)>& body) {
  keep_large_allocations();
  try {
    return body(argc, argv);
  } catch (const Error& e) {
    std::fprintf(stderr, "%s: error: %s\n", tool, e.what());
    return static_cast<int>(e.exit_code());
  } catch (const std::bad_alloc&) {
    std::fprintf(stderr, "%s: error: out of memory; lower the batch size or thread count\n", tool);
    return static_cast<int>(ExitCode::k_runtime);
  } catch (const std::exception& e) {
    // c10::Error and friends carry long backtraces; the first line is the message.
    std::string what = e.what();
    auto nl = what.find('\n');
    if (nl != std::string::npos) what.resize(nl);
    std::fprintf(stderr, "%s: error: %s\n", tool, what.c_str());
    return static_cast<int>(ExitCode::k_runtime);
  }
}

}  // namespace cd
