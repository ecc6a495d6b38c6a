#include "cd-serve/http.h"

#include <httplib.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <algorithm>

#include "util/errors.h"
#include "util/strings.h"

namespace cd::http {

namespace {

Request convert(const httplib::Request& in) {
  Request r;
  r.method = in.method;
  r.path = in.path;
  r.body = in.body;
  r.remote_addr = in.remote_addr;
  for (const auto& [k, v] : in.headers) r.headers.emplace(to_lower(k), v);
  r.content_type = in.get_header_value("Content-Type");
  r.multipart = in.is_multipart_form_data();
  for (const auto& [name, f] : in.files)
    r.parts.push_back({f.name, f.filename, f.content_type, f.content});
  return r;
}

// The `sent` callback of the response this thread is writing. httplib calls
// its logger on the same thread right after the write; a callback left over
// (a write that never reached the logger) runs before the next one is kept.
thread_local std::function<void()> t_sent;

void run_sent() {
  auto sent = std::move(t_sent);
  t_sent = nullptr;
  if (sent) sent();
}

void apply(Response from, httplib::Response& to) {
  to.status = from.status;
  for (const auto& [k, v] : from.headers) to.set_header(k, v);
  to.set_content(from.body, from.content_type);
  run_sent();
  t_sent = std::move(from.sent);
}

}  // namespace

std::string Request::header(const std::string& lower_name) const {
  auto it = headers.find(lower_name);
  return it == headers.end() ? "" : it->second;
}

struct Server::Impl {
  ServerOptions options;
  httplib::Server server;
};

Server::Server(ServerOptions options) : m_impl(std::make_unique<Impl>()) {
  m_impl->options = std::move(options);
  auto& s = m_impl->server;
  int threads = std::max(1, m_impl->options.threads);
  s.new_task_queue = [threads] { return new httplib::ThreadPool(static_cast<size_t>(threads)); };
  s.set_payload_max_length(m_impl->options.max_body_bytes);
  // A thread serves one connection at a time, for its whole keep-alive life:
  // connections beyond the thread count wait for one to close. 100 requests
  // per connection keeps them taking turns rather than starving.
  s.set_keep_alive_max_count(100);
  s.set_keep_alive_timeout(2);
  // httplib writes headers and body in separate sends; without TCP_NODELAY, Nagle plus the
  // client's delayed ACK adds ~40 ms to every response on a keep-alive connection.
  s.set_tcp_nodelay(true);
  // httplib's default sets SO_REUSEPORT, which lets a second cd-serve bind the
  // same port silently and take half the connections. SO_REUSEADDR alone
  // still allows a quick restart over TIME_WAIT sockets, and a busy port fails.
  s.set_socket_options([](socket_t sock) {
    int yes = 1;
    setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof yes);
  });
  s.set_read_timeout(30, 0);
  s.set_write_timeout(30, 0);
}

Server::~Server() = default;

void Server::handle(Handler dispatcher, ErrorHandler on_error) {
  auto& s = m_impl->server;
  auto route = [dispatcher](const httplib::Request& req, httplib::Response& res) {
    apply(dispatcher(convert(req)), res);
  };
  const std::string any = R"(.*)";
  s.Get(any, route);
  s.Post(any, route);
  s.Put(any, route);
  s.Delete(any, route);
  s.Patch(any, route);
  s.Options(any, route);
  httplib::Server::HandlerWithResponse errors = [on_error](const httplib::Request& req,
                                                           httplib::Response& res) {
    if (!res.body.empty()) return httplib::Server::HandlerResponse::Unhandled;
    apply(on_error(res.status, convert(req)), res);
    return httplib::Server::HandlerResponse::Handled;
  };
  s.set_error_handler(errors);
  s.set_exception_handler(
      [on_error](const httplib::Request& req, httplib::Response& res, std::exception_ptr) {
        apply(on_error(500, convert(req)), res);
      });
  s.set_logger([](const httplib::Request&, const httplib::Response&) { run_sent(); });
}

// Debian's cpp-httplib is compiled with a listen backlog of 5: a burst of new
// connections overflows the accept queue and clients see resets. Calling
// listen() again on the bound socket raises the backlog (Linux updates it).
static void widen_backlog(int port) {
  for (int fd = 3; fd < 4096; ++fd) {
    int accepting = 0;
    socklen_t len = sizeof accepting;
    if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &accepting, &len) != 0 || !accepting) continue;
    sockaddr_storage addr{};
    socklen_t alen = sizeof addr;
    if (getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &alen) != 0) continue;
    int bound = addr.ss_family == AF_INET6
                    ? ntohs(reinterpret_cast<sockaddr_in6*>(&addr)->sin6_port)
                    : ntohs(reinterpret_cast<sockaddr_in*>(&addr)->sin_port);
    if (bound == port) ::listen(fd, SOMAXCONN);
  }
}

int Server::bind() {
  auto& o = m_impl->options;
  int port = o.port == 0 ? m_impl->server.bind_to_any_port(o.host)
                         : (m_impl->server.bind_to_port(o.host, o.port) ? o.port : -1);
  if (port < 0)
    throw IoError("cannot listen on " + o.host + ":" + std::to_string(o.port) +
                  " (in use, or not allowed)");
  widen_backlog(port);
  return port;
}

void Server::run() { m_impl->server.listen_after_bind(); }

void Server::stop() { m_impl->server.stop(); }

}  // namespace cd::http
