#include "cd-serve/http/http.h"

#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <thread>

#include "cd-serve/http/event_loop.h"
#include "util/errors.h"

namespace cd::http {

Clock::time_point after(double seconds) {
  return Clock::now() +
         std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(seconds));
}

std::string Request::header(const std::string& lower_name) const {
  auto it = headers.find(lower_name);
  return it == headers.end() ? "" : it->second;
}

// The parts of a server: httplib's side (exchange.cpp) and the event thread
// that feeds it connections (event_loop.cpp).
struct Server::Impl {
  explicit Impl(ServerOptions o) : options(std::move(o)) {}
  ServerOptions options;
  Exchange exchange{options};
  EventLoop loop{options, exchange};
};

Server::Server(ServerOptions options) : m_impl(std::make_unique<Impl>(std::move(options))) {}

Server::~Server() = default;

void Server::handle(Handler dispatcher, ErrorHandler on_error, Screen screen) {
  m_impl->loop.set_error_handler(on_error);
  m_impl->exchange.handle(std::move(dispatcher), std::move(on_error), std::move(screen));
}

int Server::bind() { return m_impl->loop.bind(); }

void Server::run() { m_impl->loop.run(); }

std::string Server::serve_bytes(std::string_view input) {
  Impl& impl = *m_impl;
  const std::atomic<bool> draining{false};
  int sv[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0)
    throw IoError(std::string("socketpair: ") + std::strerror(errno));
  std::string output;
  std::thread client_writer([&] {
    std::size_t done = 0;
    while (done < input.size()) {
      ssize_t n = ::send(sv[1], input.data() + done, input.size() - done, MSG_NOSIGNAL);
      if (n <= 0 && errno != EINTR) break;
      if (n > 0) done += static_cast<std::size_t>(n);
    }
    ::shutdown(sv[1], SHUT_WR);
  });
  std::thread client_reader([&] {
    char buf[16384];
    for (;;) {
      ssize_t n = ::recv(sv[1], buf, sizeof buf, 0);
      if (n > 0)
        output.append(buf, static_cast<std::size_t>(n));
      else if (n == 0 || errno != EINTR)
        break;
    }
  });
  Conn conn;
  conn.fd = sv[0];
  conn.remote_ip = "127.0.0.1";
  char buf[16384];
  for (;;) {  // what the event thread does, on this thread
    if (conn.has_header()) {
      if (!impl.exchange.serve_ready(conn, draining)) break;
      if (conn.pos == conn.in.size()) conn.in.clear(), conn.pos = 0;
      continue;
    }
    if (conn.peer_eof || conn.unread() > impl.options.max_header_bytes) break;
    ssize_t n = ::recv(conn.fd, buf, sizeof buf, 0);
    if (n > 0)
      conn.in.append(buf, static_cast<std::size_t>(n));
    else if (n == 0 || errno != EINTR)
      conn.peer_eof = true;
  }
  ::shutdown(sv[0], SHUT_RDWR);
  client_writer.join();
  client_reader.join();
  ::close(sv[0]);
  ::close(sv[1]);
  return output;
}

void Server::stop() { m_impl->loop.stop(); }

}  // namespace cd::http
