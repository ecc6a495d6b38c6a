#include <catch2/catch.hpp>

#include <sstream>

#include "cd-predict/inputs.h"
#include "helpers.h"

using cd::test::write_bytes;

TEST_CASE("directories expand to their images, sorted and recursive, and problems stay in order",
          "[inputs]") {
  cd::test::TempDir dir;
  write_bytes(dir.file("b.JPG"), "x");
  write_bytes(dir.file("a.png"), "x");
  write_bytes(dir.file("sub/c.webp"), "x");
  write_bytes(dir.file("notes.txt"), "x");
  std::filesystem::create_directories(dir.file("empty"));
  std::istringstream none;
  auto items = cd::expand_inputs({dir.file("missing.jpg"), dir.path(), dir.file("empty")}, none);
  REQUIRE(items.size() == 5);
  CHECK(items[0].error == "no such file or directory");
  CHECK(items[1].path == dir.file("a.png"));
  CHECK(items[2].path == dir.file("b.JPG"));
  CHECK(items[3].path == dir.file("sub/c.webp"));
  for (int i = 1; i <= 3; ++i) CHECK(items[i].error.empty());
  CHECK(items[4].error.find("directory holds no images") == 0);
}

TEST_CASE("stdin (the - argument) gives one path per line, CRLF and blank lines included",
          "[inputs]") {
  cd::test::TempDir dir;
  write_bytes(dir.file("x.jpg"), "x");
  std::istringstream in(dir.file("x.jpg") + "\r\n\n" + dir.file("y.jpg") + "\n");
  auto items = cd::expand_inputs({"-"}, in);
  REQUIRE(items.size() == 2);
  CHECK(items[0].path == dir.file("x.jpg"));
  CHECK(items[0].error.empty());
  CHECK(items[1].error == "no such file or directory");
}
