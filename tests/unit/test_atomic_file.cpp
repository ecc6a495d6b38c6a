#include <catch2/catch.hpp>
#include <filesystem>

#include "helpers.h"
#include "util/atomic_file.h"
#include "util/errors.h"

TEST_CASE("write_file_atomic replaces the file and leaves no temporary behind", "[atomic]") {
  cd::test::TempDir dir;
  std::string path = dir.file("sub/dir/out.json");
  cd::write_file_atomic(path, "first");
  cd::write_file_atomic(path, "second");
  CHECK(cd::read_file(path) == "second");
  int entries = 0;
  for (auto& e : std::filesystem::directory_iterator(dir.file("sub/dir"))) {
    (void)e;
    ++entries;
  }
  CHECK(entries == 1);
}

TEST_CASE("a failed atomic write keeps the old file and names the path", "[atomic]") {
  cd::test::TempDir dir;
  std::string path = dir.file("keep.txt");
  cd::write_file_atomic(path, "old");
  std::filesystem::create_directory(dir.file("blocker"));
  // Renaming a file over a non-empty directory fails: the target must survive.
  cd::test::write_bytes(dir.file("blocker/x"), "x");
  try {
    cd::write_file_atomic(dir.file("blocker"), "new");
    FAIL("expected IoError");
  } catch (const cd::IoError& e) {
    CHECK(std::string(e.what()).find("blocker") != std::string::npos);
  }
  CHECK(cd::read_file(path) == "old");
  CHECK_THROWS_AS(cd::read_file(dir.file("missing")), cd::IoError);
}
