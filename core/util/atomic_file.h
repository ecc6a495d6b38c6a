// Crash-safe file output: data goes to a temporary file in the target's own
// directory, is flushed to disk, and only then renamed over the target. A
// reader therefore sees either the old file or the complete new one.
#pragma once

#include <string>
#include <string_view>

namespace cd {

void write_file_atomic(const std::string& path, std::string_view data);

// Reads a whole file; throws IoError naming the path on failure.
std::string read_file(const std::string& path);

// Creates a directory and its parents; throws IoError on failure.
void make_dirs(const std::string& path);

}  // namespace cd
