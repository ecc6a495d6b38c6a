// Crash-safe file output: data goes to a temporary file in the target's own
// directory, is flushed to disk, and only then renamed over the target. A
// reader therefore sees either the old file or the complete new one.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace cd {

void write_file_atomic(const std::string& path, std::string_view data);

// Reads a whole regular file; throws IoError naming the path on failure, for
// a FIFO, device or socket (which could block or never end), and for a file
// over max_bytes.
constexpr std::uint64_t k_read_limit = std::uint64_t{4} << 30;
std::string read_file(const std::string& path, std::uint64_t max_bytes = k_read_limit);

// The limits every tool puts on untrusted input: pixels per image, read from
// its header before decoding (--max-megapixels); bytes per input file
// (--max-file-mb); the work one decode may do, which neither bounds: CPU
// seconds on the decoding thread (--max-decode-seconds) and a progressive
// JPEG's scans (--max-jpeg-scans); and the decoders' buffers alive at once
// across threads (--max-decode-mb), beyond which a decode waits its turn.
// Set once at start-up, read everywhere.
struct InputBudget {
  std::uint64_t max_pixels = 40'000'000;
  std::uint64_t max_file_bytes = std::uint64_t{64} << 20;
  double max_decode_seconds = 1.0;
  int max_jpeg_scans = 64;
  std::uint64_t max_decode_bytes = std::uint64_t{512} << 20;
  // cd-serve: give the decoders' freed memory back to the system whenever
  // no decode is running (a burst of large images must not stay resident).
  bool return_decode_memory = false;
};
InputBudget& input_budget();

// Creates a directory and its parents; throws IoError on failure.
void make_dirs(const std::string& path);

}  // namespace cd
