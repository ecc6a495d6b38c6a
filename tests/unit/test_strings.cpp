#include <catch2/catch.hpp>

#include "util/strings.h"

TEST_CASE("to_lower folds ASCII only", "[strings]") {
  CHECK(cd::to_lower("Content-TYPE") == "content-type");
  CHECK(cd::to_lower("\xC3\x89T\xC3\x89") == "\xC3\x89t\xC3\x89");  // UTF-8 bytes untouched
  CHECK(cd::to_lower("") == "");
}

TEST_CASE("starts_with, ends_with and trim", "[strings]") {
  CHECK(cd::starts_with("image/jpeg", "image/"));
  CHECK_FALSE(cd::starts_with("imag", "image/"));
  CHECK(cd::ends_with("model.cdm", ".cdm"));
  CHECK_FALSE(cd::ends_with("cdm", ".cdm"));
  CHECK(cd::trim("  a b \t\r\n") == "a b");
  CHECK(cd::trim(" \t ") == "");
}
