#include <catch2/catch.hpp>

#include <algorithm>
#include <atomic>
#include <mutex>
#include <set>
#include <thread>
#include <vector>

#include "util/parallel.h"

TEST_CASE("parallel_for runs every index exactly once", "[parallel]") {
  for (int threads : {1, 2, 7}) {
    std::vector<std::atomic<int>> hits(1000);
    cd::parallel_for(0, hits.size(), threads, [&](std::size_t i) { hits[i]++; });
    for (auto& h : hits) REQUIRE(h.load() == 1);
  }
}

TEST_CASE("parallel_for honours begin and never uses more threads than asked", "[parallel]") {
  std::mutex mutex;
  std::set<std::thread::id> ids;
  std::vector<std::size_t> seen;
  cd::parallel_for(10, 200, 3, [&](std::size_t i) {
    std::lock_guard<std::mutex> lock(mutex);
    ids.insert(std::this_thread::get_id());
    seen.push_back(i);
  });
  CHECK(seen.size() == 190);
  CHECK(*std::min_element(seen.begin(), seen.end()) == 10);
  CHECK(ids.size() <= 3);
}

TEST_CASE("parallel_for with one thread runs everything on the caller, in order", "[parallel]") {
  std::vector<std::size_t> seen;
  std::set<std::thread::id> ids;
  cd::parallel_for(0, 50, 1, [&](std::size_t i) {
    seen.push_back(i);
    ids.insert(std::this_thread::get_id());
  });
  CHECK(seen.size() == 50);
  CHECK(std::is_sorted(seen.begin(), seen.end()));
  CHECK(ids == std::set<std::thread::id>{std::this_thread::get_id()});
}

TEST_CASE("parallel_for on an empty range calls nothing", "[parallel]") {
  bool called = false;
  cd::parallel_for(5, 5, 4, [&](std::size_t) { called = true; });
  CHECK_FALSE(called);
  CHECK(cd::hardware_threads() >= 1);
}
