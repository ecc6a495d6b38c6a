#define CATCH_CONFIG_MAIN
#include <catch2/catch.hpp>

#include <fstream>
#include <random>

#include "helpers.h"

namespace cd::test {

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

}  // namespace cd::test
