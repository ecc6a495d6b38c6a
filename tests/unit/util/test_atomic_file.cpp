#include <sys/stat.h>
#include <unistd.h>
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

TEST_CASE("temporaries left by a killed writer are removed by the next write", "[atomic]") {
  cd::test::TempDir dir;
  std::string path = dir.file("model.cdm");
  // PID 2^22 + 1 is above Linux's pid_max limit, so no process has it.
  std::string stale = path + ".tmp.4194305.12345";
  std::string other = dir.file("other.cdm.tmp.4194305.1");
  std::string live = path + ".tmp." + std::to_string(::getppid()) + ".7";
  for (const auto& p : {stale, other, live}) cd::test::write_bytes(p, "partial");
  cd::write_file_atomic(path, "complete");
  CHECK_FALSE(std::filesystem::exists(stale));
  CHECK(std::filesystem::exists(other));  // another target's
  CHECK(std::filesystem::exists(live));   // its writer may still be running
  CHECK(cd::read_file(path) == "complete");
}

TEST_CASE("read_file refuses devices and FIFOs, and files over its limit", "[atomic]") {
  cd::test::TempDir dir;
  CHECK_THROWS_WITH(cd::read_file("/dev/zero"), Catch::Contains("not a regular file"));
  std::string fifo = dir.file("fifo");
  REQUIRE(::mkfifo(fifo.c_str(), 0600) == 0);
  CHECK_THROWS_WITH(cd::read_file(fifo), Catch::Contains("not a regular file"));
  cd::test::write_bytes(dir.file("ten"), "0123456789");
  CHECK_THROWS_AS(cd::read_file(dir.file("ten"), 9), cd::BudgetError);
  CHECK(cd::read_file(dir.file("ten"), 10) == "0123456789");
}
