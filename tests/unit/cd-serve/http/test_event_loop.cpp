// The event thread (event_loop.cpp) on a real loopback socket: a connection
// holds a worker only once its header is complete, budgets are enforced on the
// event thread itself, and connections past the limit are answered 503.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <string>
#include <vector>

#include "cd-serve/http/http.h"
#include "loopback.h"

using cd::test::LoopbackServer;

namespace {

// A raw client socket, connected; closed when it goes out of scope.
struct RawClient {
  int fd = -1;
  explicit RawClient(int port) {
    fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<std::uint16_t>(port));
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
  }
  ~RawClient() { ::close(fd); }
  void send(const std::string& bytes) const {
    REQUIRE(::send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL) ==
            static_cast<ssize_t>(bytes.size()));
  }
  // Everything the server writes until it closes, or until `seconds` pass.
  std::string read_until_closed(double seconds) const {
    std::string out;
    auto end = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
    while (std::chrono::steady_clock::now() < end) {
      pollfd p{fd, POLLIN, 0};
      if (::poll(&p, 1, 50) <= 0) continue;
      char buf[4096];
      ssize_t n = ::recv(fd, buf, sizeof buf, 0);
      if (n <= 0) return out + (n == 0 ? "<closed>" : "<reset>");
      out.append(buf, static_cast<std::size_t>(n));
    }
    return out;
  }
};

cd::http::ServerOptions small_options() {
  cd::http::ServerOptions o;
  o.host = "127.0.0.1";
  o.port = 0;
  o.threads = 1;  // one worker: a client holding it would block everyone else
  o.max_body_bytes = 1000;
  return o;
}

}  // namespace

TEST_CASE("event loop: clients with half a header hold no worker", "[http]") {
  LoopbackServer server(small_options());
  std::vector<std::unique_ptr<RawClient>> stalled;
  for (int i = 0; i < 8; ++i) {
    stalled.push_back(std::make_unique<RawClient>(server.port()));
    stalled.back()->send("POST /predict HTTP/1.1\r\nHost: x\r\n");  // no blank line, ever
  }
  auto client = server.client();
  client.set_read_timeout(5, 0);
  auto res = client.Get("/after");
  REQUIRE(res);
  CHECK(res->status == 201);
  CHECK(res->body == "seen GET /after");
}

TEST_CASE("event loop: a header that does not finish in time is answered 408 and closed",
          "[http]") {
  auto options = small_options();
  options.header_timeout_s = 0.3;
  LoopbackServer server(options);
  RawClient slow(server.port());
  slow.send("GET /slow HTTP/1.1\r\nHost: x\r\n");
  std::string out = slow.read_until_closed(5);
  CHECK(out.rfind("HTTP/1.1 408", 0) == 0);
  CHECK(out.find("<closed>") != std::string::npos);
  CHECK(server.last().path.empty());  // the handler never saw it
}

TEST_CASE("event loop: a header over its size budget is answered 431", "[http]") {
  auto options = small_options();
  options.max_header_bytes = 1024;
  LoopbackServer server(options);
  RawClient big(server.port());
  big.send("GET / HTTP/1.1\r\nHost: x\r\nX-Pad: " + std::string(4096, 'a') + "\r\n\r\n");
  std::string out = big.read_until_closed(5);
  CHECK(out.rfind("HTTP/1.1 431", 0) == 0);
  CHECK(server.last().path.empty());
}

TEST_CASE("event loop: connections past the limit are answered 503 with Retry-After", "[http]") {
  auto options = small_options();
  options.max_connections = 2;
  LoopbackServer server(options);
  RawClient a(server.port()), b(server.port());
  a.send("GET / HTTP/1.1\r\nHost: x\r\n");
  b.send("GET / HTTP/1.1\r\nHost: x\r\n");
  RawClient third(server.port());
  std::string out = third.read_until_closed(5);
  CHECK(out.rfind("HTTP/1.1 503", 0) == 0);
  CHECK(out.find("Retry-After: 1") != std::string::npos);
  CHECK(out.find("too many open connections") != std::string::npos);
}
