#include <catch2/catch.hpp>

#include "domain/manifest.h"
#include "util/errors.h"

TEST_CASE("manifests round-trip, quoting paths with commas and quotes", "[manifest]") {
  std::vector<cd::Sample> samples{{"a/cat.1.jpg", 0}, {"b/odd, \"name\".jpg", 1}};
  std::string text = cd::format_manifest(samples);
  CHECK(text == "path,label\na/cat.1.jpg,cat\n\"b/odd, \"\"name\"\".jpg\",dog\n");
  auto back = cd::parse_manifest(text, "m.csv");
  REQUIRE(back.size() == 2);
  CHECK(back[1].path == "b/odd, \"name\".jpg");
  CHECK(back[1].label == 1);
}

TEST_CASE("bad manifests name the file and line", "[manifest]") {
  CHECK_THROWS_WITH(cd::parse_manifest("file,class\n", "x.csv"),
                    Catch::StartsWith("x.csv:1: expected the header"));
  CHECK_THROWS_WITH(cd::parse_manifest("path,label\na.jpg,horse\n", "x.csv"),
                    "x.csv:2: unknown label 'horse'; expected cat or dog");
  CHECK_THROWS_WITH(cd::parse_manifest("", "x.csv"), Catch::Contains("empty file"));
  CHECK_THROWS_AS(cd::read_manifest("/nonexistent/train.csv"), cd::DataError);
}

TEST_CASE("fingerprints change with content", "[manifest]") {
  std::vector<cd::Sample> a{{"x.jpg", 0}};
  std::vector<cd::Sample> b{{"x.jpg", 1}};
  CHECK(cd::manifest_fingerprint(a) == cd::manifest_fingerprint(a));
  CHECK(cd::manifest_fingerprint(a) != cd::manifest_fingerprint(b));
  CHECK(cd::manifest_fingerprint(a).size() == 16);
}
