#include <catch2/catch.hpp>

#include <sstream>

#include "cd-predict/inputs.h"
#include "helpers.h"
#include "util/errors.h"

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

TEST_CASE("a manifest expands to its rows' images in its order", "[inputs]") {
  cd::test::TempDir dir;
  write_bytes(dir.file("m.csv"), "path,label\nimg/b.jpg,dog\nimg/a.jpg,cat\n");
  write_bytes(dir.file("bad.csv"), "not,a,manifest\n");
  std::istringstream none;
  auto items = cd::expand_inputs({dir.file("m.csv"), dir.file("bad.csv")}, none);
  REQUIRE(items.size() == 3);
  CHECK(items[0].path.find("img/b.jpg") != std::string::npos);
  CHECK(items[1].path.find("img/a.jpg") != std::string::npos);
  CHECK(items[2].path == dir.file("bad.csv"));
  CHECK_FALSE(items[2].error.empty());
}

TEST_CASE("shards are contiguous, balanced and concatenate to the whole", "[inputs]") {
  for (std::size_t n : {0, 1, 7, 10, 11}) {
    std::vector<cd::Prediction> all;
    for (std::size_t i = 0; i < n; ++i) all.push_back({std::to_string(i), ""});
    for (std::size_t count : {1, 3, 4, 12}) {
      std::vector<std::string> joined;
      std::size_t smallest = n, largest = 0;
      for (std::size_t index = 0; index < count; ++index) {
        auto part = cd::take_shard(all, {index, count});
        smallest = std::min(smallest, part.size());
        largest = std::max(largest, part.size());
        for (auto& p : part) joined.push_back(p.path);
      }
      REQUIRE(joined.size() == n);
      for (std::size_t i = 0; i < n; ++i) CHECK(joined[i] == std::to_string(i));
      CHECK(largest - std::min(smallest, largest) <= 1);
    }
  }
}

TEST_CASE("the shard option takes I/N, or N with JOB_COMPLETION_INDEX, and names what is wrong",
          "[inputs]") {
  auto s = cd::parse_shard("2/5", nullptr);
  CHECK(s.index == 2);
  CHECK(s.count == 5);
  s = cd::parse_shard("4", "3");
  CHECK(s.index == 3);
  CHECK(s.count == 4);
  CHECK(cd::parse_shard("1/4", "1").index == 1);
  CHECK_THROWS_WITH(cd::parse_shard("4", nullptr), Catch::Contains("JOB_COMPLETION_INDEX"));
  CHECK_THROWS_WITH(cd::parse_shard("1/4", "2"), Catch::Contains("disagrees"));
  CHECK_THROWS_WITH(cd::parse_shard("4/4", nullptr), Catch::Contains("below the count"));
  CHECK_THROWS_WITH(cd::parse_shard("0/0", nullptr), Catch::Contains("at least 1"));
  CHECK_THROWS_WITH(cd::parse_shard("a/4", nullptr), Catch::Contains("not a whole number"));
  CHECK_THROWS_WITH(cd::parse_shard("-1/4", nullptr), Catch::Contains("not a whole number"));
  CHECK_THROWS_AS(cd::parse_shard("4", "x"), cd::UsageError);
}
