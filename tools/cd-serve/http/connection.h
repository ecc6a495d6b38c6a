// What cd-serve's event loop (event_loop.cpp) and its cpp-httplib side
// (exchange.cpp) share: a client connection, and the exchange that parses and
// answers the requests on one. Internal to cd-serve; http.h is the interface.
#pragma once

#include <atomic>
#include <chrono>
#include <memory>
#include <string>
#include <string_view>

#include "cd-serve/http/http.h"

namespace cd::http {

using Clock = std::chrono::steady_clock;

Clock::time_point after(double seconds);

// One client connection. The event thread owns it while it waits for a
// request header; a worker owns it while it serves requests.
struct Conn {
  int fd = -1;
  std::string in;  // bytes received and not yet parsed
  std::size_t pos = 0;
  Clock::time_point deadline;
  bool started = false;      // part of a request header has arrived
  bool peer_eof = false;     // the client shut down its side
  bool closing = false;      // answered for the last time; draining its input
  bool served = false;       // at least one request answered on it
  std::size_t need = 0;      // bytes (header and body) to hold before a worker takes it
  std::size_t reserved = 0;  // of the event thread's body budget
  // Requests answered while the next was already here, since the client last
  // waited for an answer; past a few, the connection is served in turns on
  // the main lane (`bulk`), never the probes' (event_loop.cpp).
  int pipelined = 0;
  bool bulk = false;
  std::string remote_ip;
  int remote_port = 0;
  std::size_t unread() const { return in.size() - pos; }
  // Length of the complete header at pos, blank line included; 0 if incomplete.
  std::size_t header_length() const {
    std::string_view rest(in.data() + pos, unread());
    std::size_t crlf = rest.find("\r\n\r\n"), lf = rest.find("\n\n");
    std::size_t end = std::min(crlf == std::string_view::npos ? crlf : crlf + 4,
                               lf == std::string_view::npos ? lf : lf + 2);
    return end == std::string_view::npos ? 0 : end;
  }
  bool has_header() const { return header_length() > 0; }
};

// cpp-httplib's request parser and writer, run by a worker on one connection
// at a time (exchange.cpp, the only file of cd-serve that sees cpp-httplib).
class Exchange {
 public:
  explicit Exchange(const ServerOptions& options);
  ~Exchange();
  // The routes, the answers to errors, and the screen a request's head passes
  // before its body is read.
  void handle(Handler dispatcher, ErrorHandler on_error, Screen screen);
  // Serves the requests whose headers have arrived on conn (a response says
  // Connection: close once `draining`), a few at a time: false when the
  // connection must close, true when it goes back to the event thread (to
  // wait for its next request, or for its next turn when more are here).
  bool serve_ready(Conn& conn, const std::atomic<bool>& draining);

 private:
  struct Impl;
  std::unique_ptr<Impl> m_impl;
};

}  // namespace cd::http
