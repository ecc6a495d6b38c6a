// Where a request's header ends in a connection's input (connection.h's
// Conn::header_length), as bytes arrive in any split: never missed, never
// misplaced, never found before the byte that completes it.
#include <catch2/catch.hpp>

#include <string>

#include "cd-serve/http/connection.h"

namespace {

// Feeds `text` into conn one byte at a time, asking for the header after
// each: the first length found and after how many bytes.
std::pair<std::size_t, std::size_t> trickle(cd::http::Conn& conn, const std::string& text) {
  for (std::size_t i = 0; i < text.size(); ++i) {
    conn.in.push_back(text[i]);
    if (std::size_t n = conn.header_length()) return {n, i + 1};
  }
  return {0, text.size()};
}

}  // namespace

TEST_CASE("a header trickling in a byte at a time ends at its blank line", "[http]") {
  const std::string crlf = "GET /a HTTP/1.1\r\nHost: x\r\n\r\n";
  const std::string lf = "GET /a HTTP/1.1\nHost: x\n\n";
  for (const std::string& head : {crlf, lf}) {
    cd::http::Conn conn;
    auto [length, after] = trickle(conn, head + "body");
    CHECK(length == head.size());
    CHECK(after == head.size());  // found by the byte that completes it, not later
  }
}

TEST_CASE("a blank line split across reads is found whatever the split", "[http]") {
  const std::string head = "POST /p HTTP/1.1\r\nContent-Length: 2\r\n\r\n";
  for (std::size_t cut = 1; cut < head.size(); ++cut) {
    cd::http::Conn conn;
    conn.in = head.substr(0, cut);
    CHECK(conn.header_length() == 0);
    conn.in += head.substr(cut) + "ok";
    CHECK(conn.header_length() == head.size());
  }
}

TEST_CASE("the next pipelined header is searched from where the last request ended", "[http]") {
  const std::string first = "GET /1 HTTP/1.1\r\n\r\n", second = "GET /2 HTTP/1.1\r\nX: y\r\n\r\n";
  cd::http::Conn conn;
  conn.in = first + second.substr(0, 10);
  REQUIRE(conn.header_length() == first.size());
  conn.pos += first.size();
  CHECK(conn.header_length() == 0);
  conn.in += second.substr(10);
  CHECK(conn.header_length() == second.size());
}
