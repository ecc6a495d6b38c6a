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

TEST_CASE("valid_utf8 accepts well-formed text only", "[strings]") {
  CHECK(cd::valid_utf8(""));
  CHECK(cd::valid_utf8("plain /predict"));
  CHECK(cd::valid_utf8("caf\xC3\xA9 \xE2\x82\xAC \xF0\x9F\x90\x88"));
  CHECK_FALSE(cd::valid_utf8("\xFF"));
  CHECK_FALSE(cd::valid_utf8("a\xC3"));             // cut short
  CHECK_FALSE(cd::valid_utf8("\xC0\xAF"));          // overlong '/'
  CHECK_FALSE(cd::valid_utf8("\xED\xA0\x80"));      // a surrogate
  CHECK_FALSE(cd::valid_utf8("\xF4\x90\x80\x80"));  // above U+10FFFF
}

TEST_CASE("escape_tsv keeps a field on one line and in one column", "[strings]") {
  CHECK(cd::escape_tsv("a\tb\nc\rd\\e") == "a\\tb\\nc\\rd\\\\e");
  CHECK(cd::escape_tsv("plain.jpg") == "plain.jpg");
}
