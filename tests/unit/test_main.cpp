#define CATCH_CONFIG_MAIN
#include <catch2/catch.hpp>

#include <fstream>
#include <random>

#include "helpers.h"

namespace cd::test {

extern const char* const k_source_dir;  // source_dir.cpp, generated

std::string source_path(const std::string& rel) { return std::string(k_source_dir) + "/" + rel; }

TempDir::TempDir() {
  std::random_device rd;
  m_path =
      (std::filesystem::temp_directory_path() / ("catdog-test-" + std::to_string(rd()))).string();
  std::filesystem::create_directories(m_path);
}

TempDir::~TempDir() {
  std::error_code ec;
  std::filesystem::remove_all(m_path, ec);
}

void write_bytes(const std::string& path, const std::string& bytes) {
  std::filesystem::create_directories(std::filesystem::path(path).parent_path());
  std::ofstream(path, std::ios::binary) << bytes;
}

std::vector<Sample> fixture_photos() {
  std::vector<Sample> out;
  for (int i = 1; i <= 4; ++i) {
    out.push_back({source_path("tests/fixtures/photos/cat." + std::to_string(i) + ".jpg"), 0});
    out.push_back({source_path("tests/fixtures/photos/dog." + std::to_string(i) + ".jpg"), 1});
  }
  return out;
}

}  // namespace cd::test
