// Shared helpers for the unit tests: fixture paths and scratch directories.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include "domain/manifest.h"

namespace cd::test {

// A path under the source tree. The tree's location is compiled into one
// generated file only (source_dir.cpp), so every other test file's object is
// the same in any checkout and ccache shares it between clones.
std::string source_path(const std::string& rel);

// A fresh empty directory under the system temp dir, removed at scope exit.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  const std::string& path() const { return m_path; }
  std::string file(const std::string& name) const { return m_path + "/" + name; }

 private:
  std::string m_path;
};

void write_bytes(const std::string& path, const std::string& bytes);

// The eight committed photos (tests/fixtures/photos), cat.1, dog.1, cat.2, ...
std::vector<Sample> fixture_photos();

}  // namespace cd::test
