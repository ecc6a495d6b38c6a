// A worker lane (lane.h): every connection pushed is served once, in order on
// one thread, and a stop serves the queue to its end before the threads end.
#include <catch2/catch.hpp>

#include <atomic>
#include <mutex>
#include <vector>

#include "cd-serve/http/lane.h"

TEST_CASE("a lane of one thread serves connections in the order they were pushed", "[http]") {
  std::vector<cd::http::Conn> conns(50);
  std::vector<int> order;
  cd::http::Lane lane;
  lane.start(1, [&](cd::http::Conn* c) { order.push_back(c->fd); });
  for (int i = 0; i < 50; ++i) {
    conns[static_cast<std::size_t>(i)].fd = i;
    lane.push(&conns[static_cast<std::size_t>(i)]);
  }
  lane.stop_and_join();  // right after the pushes: the queue is still served to its end
  REQUIRE(order.size() == 50);
  for (int i = 0; i < 50; ++i) CHECK(order[static_cast<std::size_t>(i)] == i);
}

TEST_CASE("a lane of several threads serves every connection exactly once", "[http]") {
  std::vector<cd::http::Conn> conns(400);
  std::vector<std::atomic<int>> served(conns.size());
  cd::http::Lane lane;
  lane.start(4, [&](cd::http::Conn* c) { ++served[static_cast<std::size_t>(c->fd)]; });
  for (std::size_t i = 0; i < conns.size(); ++i) {
    conns[i].fd = static_cast<int>(i);
    lane.push(&conns[i]);
  }
  lane.stop_and_join();
  for (auto& n : served) CHECK(n.load() == 1);
  lane.stop_and_join();  // again: nothing left to join
}
