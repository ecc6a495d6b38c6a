// Typed errors thrown by core, and the single wrapper that turns them into the
// documented exit codes (0 ok, 1 runtime failure, 2 usage/config, 3 partial input).
#pragma once

#include <functional>
#include <stdexcept>
#include <string>

namespace cd {

enum class ExitCode : int { k_ok = 0, k_runtime = 1, k_usage = 2, k_partial = 3 };

class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
  virtual ExitCode exit_code() const { return ExitCode::k_runtime; }
};

// A bad flag, an unknown config key or a value out of range.
class UsageError : public Error {
 public:
  using Error::Error;
  ExitCode exit_code() const override { return ExitCode::k_usage; }
};

// Input data that cannot be used: a missing image, an empty or one-class manifest.
class DataError : public Error {
 public:
  using Error::Error;
};

// Input over one of the budgets (pixels per image, bytes per file or body).
class BudgetError : public DataError {
 public:
  using DataError::DataError;
};

// Input whose decoding went over its work budget (CPU seconds, JPEG scans):
// within every byte and pixel budget, yet costly to decode.
class CostError : public BudgetError {
 public:
  using BudgetError::BudgetError;
};

// Reading or writing a file failed.
class IoError : public Error {
 public:
  using Error::Error;
};

// A model or checkpoint file that is truncated, foreign or from a newer format.
class ModelError : public Error {
 public:
  using Error::Error;
};

// Training produced a non-finite loss.
class DivergedError : public Error {
 public:
  using Error::Error;
};

// How a tool's process keeps memory (glibc malloc tunables, set at start).
// k_batch (training, eval, prediction): large buffers stay mapped, since
// page faults cost ~12 us per page here and returning LibTorch's buffers
// every step made training 7-10x slower (PERF-NOTES.md).
// k_service (cd-serve): the same for large buffers, but one malloc arena per
// four cores instead of eight per core, and memory above 64 MiB of free heap
// goes back to the system, so a burst of requests does not stay resident.
// An environment variable the user sets (MALLOC_ARENA_MAX,
// MALLOC_MMAP_THRESHOLD_, MALLOC_TRIM_THRESHOLD_) wins over the profile.
enum class MemoryProfile { k_batch, k_service };

// Runs a tool's body: catches every exception once, prints
// "<tool>: error: <message>" to stderr and returns the documented exit code.
// Also applies the process-wide settings every tool needs (the memory profile).
int run_tool(const char* tool, int argc, char** argv, const std::function<int(int, char**)>& body,
             MemoryProfile profile = MemoryProfile::k_batch);

}  // namespace cd
