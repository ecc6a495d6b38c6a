// Wall-clock milestones from process start, for finding where a short-lived
// tool's start-up goes (dynamic loading and static initialisers happen
// before main, so they only show up against the kernel's start time).
#pragma once

namespace cd {

// Milliseconds since the kernel started this process (from /proc/self/stat,
// in 10 ms ticks, at the first call; later calls add the monotonic clock's
// time since, so the differences between milestones are exact).
double ms_since_process_start();

}  // namespace cd
