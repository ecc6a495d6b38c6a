// Where and with how many threads LibTorch computes: the device choice every
// tool's --device flag maps to, and the thread count from --threads.
#pragma once

#include <c10/core/Device.h>

#include <string>

namespace cd {

enum class DeviceChoice { k_cpu, k_cuda, k_auto };

DeviceChoice parse_device(const std::string& name);  // UsageError

// cpu, or cuda when asked for (UsageError if absent) or when auto finds one.
c10::Device select_device(DeviceChoice choice);

// Sets LibTorch's intra-op threads (it defaults to 1 on this VM kind, see
// PERF-NOTES.md).
void set_compute_threads(int threads);

}  // namespace cd
