// cd-serve's event thread: accepts, waits for each request's complete header
// (and a body it may read itself) within the size and time budgets, then hands
// the connection to a worker lane, probes to a lane of their own; answers 408
// and 431 itself, and drains on stop().
#include "cd-serve/http/event_loop.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "util/errors.h"
#include "util/strings.h"

namespace cd::http {

namespace {

// The body length a complete header at conn.pos declares, when the event
// thread may read that body itself: a plain Content-Length, no chunking and
// no Expect (whose client waits for 100 Continue first). nullopt otherwise.
std::optional<std::size_t> simple_body_length(const Conn& conn, std::size_t header_length) {
  std::string head = to_lower(std::string_view(conn.in.data() + conn.pos, header_length));
  if (head.find("\ntransfer-encoding:") != std::string::npos ||
      head.find("\nexpect:") != std::string::npos)
    return std::nullopt;
  std::size_t at = head.find("\ncontent-length:");
  if (at == std::string::npos) return std::size_t{0};
  if (head.find("\ncontent-length:", at + 1) != std::string::npos) return std::nullopt;
  std::size_t begin = head.find_first_not_of(" \t", at + 16);
  std::size_t end = head.find_first_not_of("0123456789", begin);
  if (begin == std::string::npos || end == begin || end - begin > 12) return std::nullopt;
  return static_cast<std::size_t>(std::stoull(head.substr(begin, end - begin)));
}

bool is_probe(const Conn& conn) {
  std::string_view line(conn.in.data() + conn.pos, std::min<std::size_t>(conn.unread(), 64));
  for (const char* probe : {"/health", "/ready", "/metrics", "/v2/health/live", "/v2/health/ready"})
    for (const char* method : {"GET ", "HEAD "}) {
      std::string prefix = std::string(method) + probe;
      if (starts_with(line, prefix) && line.size() > prefix.size() &&
          (line[prefix.size()] == ' ' || line[prefix.size()] == '?'))
        return true;
    }
  return false;
}

const char k_busy[] =
    "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nConnection: "
    "close\r\nRetry-After: 1\r\nContent-Length: 87\r\n\r\n"
    "{\"error\":{\"code\":503,\"message\":\"too many open connections\",\"type\":\"overloaded\"}}";

}  // namespace

EventLoop::EventLoop(const ServerOptions& options, Exchange& exchange)
    : m_options(options), m_exchange(exchange) {}

void EventLoop::set_error_handler(ErrorHandler on_error) { m_on_error = std::move(on_error); }

EventLoop::~EventLoop() {
  for (auto& [fd, conn] : m_waiting) {
    ::close(fd);
    delete conn;
  }
  for (int fd : {m_listen_fd, m_epoll_fd, m_wake_fd})
    if (fd >= 0) ::close(fd);
}

void EventLoop::wake() {
  std::uint64_t one = 1;
  [[maybe_unused]] ssize_t n = ::write(m_wake_fd, &one, sizeof one);
}

void EventLoop::serve(Conn* conn) {
  if (!m_exchange.serve_ready(*conn, m_draining)) conn->closing = true;
  {
    std::lock_guard<std::mutex> lock(m_returned_mutex);
    m_returned.push_back(conn);
  }
  --m_busy;
  wake();
}

void EventLoop::watch(Conn* conn, double timeout_s) {
  conn->deadline = after(timeout_s);
  m_waiting[conn->fd] = conn;
  epoll_event ev{};
  ev.events = EPOLLIN | EPOLLRDHUP;
  ev.data.fd = conn->fd;
  epoll_ctl(m_epoll_fd, EPOLL_CTL_ADD, conn->fd, &ev);
}

void EventLoop::forget(Conn* conn) {
  epoll_ctl(m_epoll_fd, EPOLL_CTL_DEL, conn->fd, nullptr);
  m_waiting.erase(conn->fd);
}

void EventLoop::release(Conn* conn) {
  m_body_reserved -= conn->reserved;
  conn->reserved = 0;
  conn->need = 0;
}

void EventLoop::destroy(Conn* conn) {
  release(conn);
  ::close(conn->fd);
  --m_open;
  delete conn;
}

// Answers a request the event thread refuses itself (408, 431), then
// closes gently: our side shuts, the client's remaining bytes are read and
// dropped for a moment, so it sees the answer rather than a reset.
void EventLoop::refuse(Conn* conn, int status, const std::string& reason) {
  Request req;
  req.remote_addr = conn->remote_ip;
  Response res = m_on_error(status, reason, req);
  std::string head = "HTTP/1.1 " + std::to_string(status) +
                     (status == 408 ? " Request Timeout" : " Request Header Fields Too Large") +
                     "\r\nContent-Type: " + res.content_type +
                     "\r\nConnection: close\r\nContent-Length: " + std::to_string(res.body.size()) +
                     "\r\n";
  for (const auto& [k, v] : res.headers) head += k + ": " + v + "\r\n";
  head += "\r\n" + res.body;
  [[maybe_unused]] ssize_t n =
      ::send(conn->fd, head.data(), head.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
  if (res.sent) res.sent();
  linger(conn);
}

// The next request's header, complete or not, is over its budget: a header
// that arrived whole in one read is held to it as one that trickles in.
bool EventLoop::header_too_large(const Conn& conn) const {
  std::size_t header = conn.header_length();
  return (header ? header : conn.unread()) > m_options.max_header_bytes;
}

void EventLoop::refuse_header(Conn* conn) {
  refuse(conn, 431,
         "request header is larger than " + std::to_string(m_options.max_header_bytes) + " bytes");
}

void EventLoop::linger(Conn* conn) {
  ::shutdown(conn->fd, SHUT_WR);
  conn->closing = true;
  conn->in.clear();
  conn->pos = 0;
  if (m_waiting.count(conn->fd)) {
    conn->deadline = after(1.0);
  } else {
    watch(conn, 1.0);
  }
}

void EventLoop::dispatch(Conn* conn) {
  release(conn);
  forget(conn);
  ++m_busy;
  (is_probe(*conn) && !conn->bulk ? m_probe_lane : m_main_lane).push(conn);
}

void EventLoop::accept_all() {
  for (;;) {
    sockaddr_storage addr{};
    socklen_t len = sizeof addr;
    int fd = ::accept4(m_listen_fd, reinterpret_cast<sockaddr*>(&addr), &len,
                       SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno == EINTR || errno == ECONNABORTED) continue;
      return;  // EAGAIN, or out of descriptors until some close
    }
    if (m_open >= m_options.max_connections) {
      [[maybe_unused]] ssize_t n = ::send(fd, k_busy, sizeof k_busy - 1, MSG_NOSIGNAL);
      ::close(fd);
      continue;
    }
    int yes = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &yes, sizeof yes);
    auto* conn = new Conn;
    conn->fd = fd;
    char host[NI_MAXHOST], serv[NI_MAXSERV];
    if (getnameinfo(reinterpret_cast<sockaddr*>(&addr), len, host, sizeof host, serv, sizeof serv,
                    NI_NUMERICHOST | NI_NUMERICSERV) == 0) {
      conn->remote_ip = host;
      conn->remote_port = std::atoi(serv);
    }
    ++m_open;
    watch(conn, m_options.header_timeout_s);
  }
}

// A request is ready for a worker once its header, and a body the event
// thread may read, are all here.
bool EventLoop::ready(Conn* conn) {
  std::size_t header = conn->header_length();
  if (header == 0) return false;
  if (conn->need == 0) {
    auto body = simple_body_length(*conn, header);
    if (!body || *body == 0 || *body > m_options.max_body_bytes ||
        m_body_reserved + *body > m_body_budget)
      return true;  // no body, or one a worker reads (and the screen may refuse)
    conn->need = header + *body;
    conn->reserved = *body;
    m_body_reserved += *body;
    conn->deadline = after(m_options.body_timeout_s);
  }
  return conn->unread() >= conn->need;
}

void EventLoop::on_readable(Conn* conn) {
  char buf[16384];
  for (;;) {
    if (!conn->closing &&
        (conn->need ? conn->unread() >= conn->need : conn->unread() > m_options.max_header_bytes))
      break;  // enough for now
    ssize_t n = ::recv(conn->fd, buf, sizeof buf, MSG_DONTWAIT);
    if (n > 0) {
      if (conn->closing) continue;  // dropped
      if (!conn->started) {
        conn->started = true;
        conn->deadline = after(m_options.header_timeout_s);
      }
      conn->in.append(buf, static_cast<std::size_t>(n));
      if (conn->need == 0 && ready(conn) && conn->need == 0) break;  // no body to wait for
      continue;
    }
    if (n == 0)
      conn->peer_eof = true;
    else if (errno == EINTR)
      continue;
    else if (errno != EAGAIN && errno != EWOULDBLOCK)
      conn->peer_eof = true;
    break;
  }
  if (conn->closing) {
    if (conn->peer_eof) {
      forget(conn);
      destroy(conn);
    }
    return;
  }
  // A client that sent part of a body and closed is still answered: the
  // worker finds the body cut short and says so.
  if (header_too_large(*conn)) return refuse_header(conn);
  if (ready(conn) || (conn->peer_eof && conn->has_header())) return dispatch(conn);
  if (conn->peer_eof) {
    forget(conn);
    destroy(conn);
  }
}

void EventLoop::take_returned() {
  std::vector<Conn*> back;
  {
    std::lock_guard<std::mutex> lock(m_returned_mutex);
    back.swap(m_returned);
  }
  for (Conn* conn : back) {
    if (conn->closing) {
      linger(conn);
      continue;
    }
    if (conn->pos == conn->in.size()) {
      conn->in.clear();
      conn->pos = 0;
    }
    conn->started = conn->unread() > 0;
    // Its turn ended with requests still here: to the back of the queue.
    if (conn->started) {  // while draining too: the answer then says Connection: close
      if (header_too_large(*conn)) {
        refuse_header(conn);
        continue;
      }
      if (ready(conn)) {
        dispatch(conn);
        continue;
      }
      if (conn->need) {  // the next request's body is on its way
        watch(conn, m_options.body_timeout_s);
        continue;
      }
    }
    // While draining, a client that just had an answer gets a moment to
    // send its next request, which is answered with Connection: close.
    double timeout = m_draining      ? 0.5
                     : conn->started ? m_options.header_timeout_s
                                     : m_options.idle_timeout_s;
    watch(conn, timeout);
  }
}

void EventLoop::expire() {
  auto now = Clock::now();
  std::vector<Conn*> due;
  for (auto& [fd, conn] : m_waiting)
    if (conn->deadline <= now) due.push_back(conn);
  for (Conn* conn : due) {
    if (conn->closing || !conn->started) {
      forget(conn);
      destroy(conn);
    } else {
      bool body = conn->need > 0;
      refuse(conn, 408,
             std::string(body ? "request body" : "request header") + " not received within " +
                 std::to_string(static_cast<int>(body ? m_options.body_timeout_s
                                                      : m_options.header_timeout_s)) +
                 " s");
    }
  }
}

void EventLoop::begin_drain() {
  accept_all();  // connections the kernel completed are accepted requests too
  epoll_ctl(m_epoll_fd, EPOLL_CTL_DEL, m_listen_fd, nullptr);
  ::close(m_listen_fd);
  m_listen_fd = -1;
  // Idle keep-alive connections close within a quarter of a second: at
  // once for a client that is really idle, yet a client that has just had
  // an answer and is sending its next request is answered (with
  // Connection: close) rather than reset. A request already under way, or
  // a connection just accepted, gets a second to arrive.
  for (auto& [fd, conn] : m_waiting) {
    if (conn->closing) continue;
    bool fresh = conn->started || !conn->served;
    conn->deadline = std::min(conn->deadline, after(fresh ? 1.0 : 0.25));
  }
}

void EventLoop::loop() {
  bool drained = false;
  epoll_event events[256];
  for (;;) {
    if (m_draining && !drained) {
      begin_drain();
      drained = true;
    }
    if (drained && m_busy == 0 && m_waiting.empty()) {
      std::lock_guard<std::mutex> lock(m_returned_mutex);
      if (m_returned.empty()) return;
    }
    int n = epoll_wait(m_epoll_fd, events, 256, 100);
    for (int i = 0; i < n; ++i) {
      int fd = events[i].data.fd;
      if (fd == m_listen_fd) {
        accept_all();
      } else if (fd == m_wake_fd) {
        std::uint64_t count;
        [[maybe_unused]] ssize_t r = ::read(m_wake_fd, &count, sizeof count);
      } else if (auto it = m_waiting.find(fd); it != m_waiting.end()) {
        on_readable(it->second);
      }
    }
    take_returned();
    expire();
  }
}

int EventLoop::bind() {
  const auto& o = m_options;
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  addrinfo* found = nullptr;
  std::string where = o.host + ":" + std::to_string(o.port);
  if (getaddrinfo(o.host.c_str(), std::to_string(o.port).c_str(), &hints, &found) != 0 || !found)
    throw IoError("cannot listen on " + where + " (unknown host)");
  std::string why = "in use, or not allowed";
  for (addrinfo* a = found; a && m_listen_fd < 0; a = a->ai_next) {
    int fd = ::socket(a->ai_family, a->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, a->ai_protocol);
    if (fd < 0) continue;
    // SO_REUSEADDR allows a quick restart over TIME_WAIT sockets; no
    // SO_REUSEPORT, so a second server on a busy port fails here rather than
    // silently taking half of the connections.
    int yes = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof yes);
    if (::bind(fd, a->ai_addr, a->ai_addrlen) == 0 && ::listen(fd, SOMAXCONN) == 0) {
      m_listen_fd = fd;
    } else {
      why = std::strerror(errno);
      ::close(fd);
    }
  }
  freeaddrinfo(found);
  if (m_listen_fd < 0) throw IoError("cannot listen on " + where + " (" + why + ")");
  sockaddr_storage addr{};
  socklen_t len = sizeof addr;
  getsockname(m_listen_fd, reinterpret_cast<sockaddr*>(&addr), &len);
  int port = addr.ss_family == AF_INET6 ? ntohs(reinterpret_cast<sockaddr_in6*>(&addr)->sin6_port)
                                        : ntohs(reinterpret_cast<sockaddr_in*>(&addr)->sin_port);
  m_epoll_fd = epoll_create1(EPOLL_CLOEXEC);
  m_wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  for (int fd : {m_listen_fd, m_wake_fd}) {
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.fd = fd;
    epoll_ctl(m_epoll_fd, EPOLL_CTL_ADD, fd, &ev);
  }
  return port;
}

void EventLoop::run() {
  m_main_lane.start(std::max(1, m_options.threads), [this](Conn* c) { serve(c); });
  m_probe_lane.start(std::max(1, m_options.probe_threads), [this](Conn* c) { serve(c); });
  loop();
  m_main_lane.stop_and_join();
  m_probe_lane.stop_and_join();
}

void EventLoop::stop() {
  m_draining = true;
  if (m_wake_fd >= 0) wake();
}

}  // namespace cd::http
