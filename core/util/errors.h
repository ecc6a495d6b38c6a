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

// Runs a tool's body: catches every exception once, prints
// "<tool>: error: <message>" to stderr and returns the documented exit code.
// Also applies the process-wide settings every tool needs (allocator thresholds).
int run_tool(const char* tool, int argc, char** argv, const std::function<int(int, char**)>& body);

}  // namespace cd
