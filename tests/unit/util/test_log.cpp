#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "util/errors.h"
#include "util/log.h"

TEST_CASE("JSON log lines are single valid objects", "[log]") {
  std::string line = cd::log::json_line("warn", "", "quote \" and\nnewline", 12.5);
  CHECK(line.find('\n') == std::string::npos);
  auto j = nlohmann::json::parse(line);
  CHECK(j["level"] == "warn");
  CHECK(j["msg"] == "quote \" and\nnewline");
  CHECK(j["ts"] == 12.5);
}

TEST_CASE("unknown log settings are usage errors", "[log]") {
  CHECK(cd::log::parse_format("json") == cd::log::Format::k_json);
  CHECK_THROWS_AS(cd::log::parse_format("xml"), cd::UsageError);
  CHECK_THROWS_AS(cd::log::setup("loud", "text"), cd::UsageError);
  CHECK_NOTHROW(cd::log::setup("info", "json"));
  CHECK_NOTHROW(cd::log::setup("info", "text"));
}
