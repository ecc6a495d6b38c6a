#include <sys/stat.h>

#include <catch2/catch.hpp>

#include "helpers.h"
#include "util/errors.h"
#include "util/mapped_file.h"

TEST_CASE("a mapped file holds the file's bytes", "[util]") {
  cd::test::TempDir dir;
  std::string path = dir.path() + "/m.bin";
  cd::test::write_bytes(path, std::string("abc\0def", 7));
  cd::MappedFile file(path);
  CHECK(file.bytes() == std::string_view("abc\0def", 7));
  cd::test::write_bytes(dir.path() + "/empty", "");
  CHECK(cd::MappedFile(dir.path() + "/empty").bytes().empty());
}

TEST_CASE("a directory, a FIFO or a missing path is an IoError that says which", "[util]") {
  cd::test::TempDir dir;
  CHECK_THROWS_WITH(cd::MappedFile(dir.path()), Catch::Contains("is a directory, not a file"));
  std::string fifo = dir.path() + "/fifo";
  REQUIRE(::mkfifo(fifo.c_str(), 0600) == 0);
  // Refused at once: the open does not wait for a writer.
  CHECK_THROWS_WITH(cd::MappedFile(fifo), Catch::Contains("not a regular file"));
  CHECK_THROWS_AS(cd::MappedFile(dir.path() + "/nowhere"), cd::IoError);
}
