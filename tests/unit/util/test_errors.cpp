#include <catch2/catch.hpp>

#include "util/errors.h"

namespace {
int run(const std::function<int(int, char**)>& body) {
  char name[] = "cd-test";
  char* argv[] = {name, nullptr};
  return cd::run_tool("cd-test", 1, argv, body);
}
}  // namespace

TEST_CASE("run_tool maps typed errors to the documented exit codes", "[errors]") {
  CHECK(run([](int, char**) { return 0; }) == 0);
  CHECK(run([](int, char**) -> int { throw cd::UsageError("bad flag"); }) == 2);
  CHECK(run([](int, char**) -> int { throw cd::DataError("no images"); }) == 1);
  CHECK(run([](int, char**) -> int { throw cd::ModelError("truncated"); }) == 1);
  CHECK(run([](int, char**) -> int { throw cd::DivergedError("nan"); }) == 1);
  CHECK(run([](int, char**) -> int { throw std::runtime_error("other"); }) == 1);
  CHECK(run([](int, char**) { return 3; }) == 3);
}
