// One connection's requests through the Exchange (exchange.cpp): framing,
// the checks before a body is read, and answers in request order. Fed through
// Server::serve_bytes, the same parser, screen and handlers as a socket.
#include <catch2/catch.hpp>

#include <string>

#include "cd-serve/http/http.h"

namespace {

std::string serve(const std::string& input, std::size_t max_body = 1000) {
  cd::http::ServerOptions options{"127.0.0.1", 0, 1, max_body};
  cd::http::Server server(options);
  server.handle(
      [](const cd::http::Request& req) {
        return cd::http::Response{
            200, "text/plain", req.method + " " + req.path + " " + std::to_string(req.body.size())};
      },
      [](int status, const std::string& reason, const cd::http::Request&) {
        return cd::http::Response{status, "text/plain", "refused: " + reason};
      });
  return server.serve_bytes(input);
}

std::size_t count(const std::string& text, const std::string& what) {
  std::size_t n = 0;
  for (auto at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
  return n;
}

}  // namespace

TEST_CASE("exchange: pipelined requests are answered in the order they came", "[http]") {
  std::string out = serve(
      "GET /first HTTP/1.1\r\nHost: x\r\n\r\n"
      "POST /second HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc"
      "GET /third HTTP/1.1\r\nHost: x\r\n\r\n");
  CHECK(count(out, "HTTP/1.1 200") == 3);
  auto first = out.find("GET /first 0"), second = out.find("POST /second 3"),
       third = out.find("GET /third 0");
  REQUIRE(first != std::string::npos);
  REQUIRE(second != std::string::npos);
  REQUIRE(third != std::string::npos);
  CHECK(first < second);
  CHECK(second < third);
}

TEST_CASE("exchange: a chunked body reaches the handler whole, and is held to the limit",
          "[http]") {
  std::string chunked =
      "POST /predict HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
      "4\r\nabcd\r\n6\r\nefghij\r\n0\r\n\r\n";
  CHECK(serve(chunked).find("POST /predict 10") != std::string::npos);
  // The same body against a budget of 8 bytes: refused as it arrives, not after.
  std::string out = serve(chunked, /*max_body=*/8);
  CHECK(out.rfind("HTTP/1.1 413", 0) == 0);
  CHECK(out.find("POST /predict") == std::string::npos);
}

TEST_CASE("exchange: framing a proxy could read differently is refused with 400", "[http]") {
  // Request smuggling: two lengths, or a length beside chunked encoding.
  std::string two_lengths =
      "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd";
  std::string both =
      "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n"
      "3\r\nabc\r\n0\r\n\r\n";
  std::string no_host = "GET / HTTP/1.1\r\n\r\n";
  std::string gzip_te = "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n";
  for (const std::string& input : {two_lengths, both, no_host, gzip_te}) {
    INFO(input);
    std::string out = serve(input);
    CHECK(out.rfind("HTTP/1.1 400", 0) == 0);
    CHECK(out.find("refused: ") != std::string::npos);
    CHECK(out.find("HTTP/1.1 200") == std::string::npos);
  }
}

TEST_CASE("exchange: a declared length over the limit is refused before the body is read",
          "[http]") {
  std::string out = serve("POST /predict HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\n\r\n");
  CHECK(out.rfind("HTTP/1.1 413", 0) == 0);
  CHECK(out.find("5000 bytes is over the limit of 1000") != std::string::npos);
}
