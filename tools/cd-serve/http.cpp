#include "cd-serve/http.h"

#include <httplib.h>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <mutex>
#include <thread>
#include <unordered_map>

#include "util/errors.h"
#include "util/strings.h"

namespace cd::http {

namespace {

using Clock = std::chrono::steady_clock;

Clock::time_point after(double seconds) {
  return Clock::now() +
         std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(seconds));
}

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

// The socket as httplib reads and writes it: bytes already received first,
// then the socket, within this request's deadline and byte budget.
class ConnStream final : public httplib::Stream {
 public:
  ConnStream(Conn& conn, Clock::time_point deadline, std::size_t budget)
      : m_conn(conn), m_deadline(deadline), m_budget(budget) {}

  bool is_readable() const override { return m_conn.unread() > 0 || wait(POLLIN, 0); }
  bool is_writable() const override { return wait(POLLOUT, 0); }

  ssize_t read(char* ptr, size_t size) override {
    if (m_consumed >= m_budget) {
      m_over_budget = true;
      return -1;
    }
    size = std::min(size, m_budget - m_consumed);
    if (m_conn.unread() > 0) {
      size_t n = std::min(size, m_conn.unread());
      std::memcpy(ptr, m_conn.in.data() + m_conn.pos, n);
      m_conn.pos += n;
      m_consumed += n;
      return static_cast<ssize_t>(n);
    }
    if (m_conn.peer_eof) return 0;
    for (;;) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(m_deadline - Clock::now());
      if (left.count() <= 0 || !wait(POLLIN, static_cast<int>(left.count()))) {
        m_timed_out = true;
        return -1;
      }
      ssize_t n = ::recv(m_conn.fd, ptr, size, MSG_DONTWAIT);
      if (n > 0) m_consumed += static_cast<size_t>(n);
      if (n == 0) m_conn.peer_eof = true;
      if (n >= 0) return n;
      if (errno != EINTR && errno != EAGAIN && errno != EWOULDBLOCK) return -1;
    }
  }

  ssize_t write(const char* ptr, size_t size) override {
    size_t done = 0;
    auto deadline = after(30);
    while (done < size) {
      ssize_t n = ::send(m_conn.fd, ptr + done, size - done, MSG_NOSIGNAL | MSG_DONTWAIT);
      if (n > 0) {
        done += static_cast<size_t>(n);
        continue;
      }
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK) return -1;
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
      if (left.count() <= 0 || !wait(POLLOUT, static_cast<int>(left.count()))) return -1;
    }
    return static_cast<ssize_t>(done);
  }

  void get_remote_ip_and_port(std::string& ip, int& port) const override {
    ip = m_conn.remote_ip;
    port = m_conn.remote_port;
  }
  void get_local_ip_and_port(std::string& ip, int& port) const override {
    sockaddr_storage addr{};
    socklen_t len = sizeof addr;
    ip.clear();
    port = 0;
    if (getsockname(m_conn.fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) return;
    char host[NI_MAXHOST], serv[NI_MAXSERV];
    if (getnameinfo(reinterpret_cast<sockaddr*>(&addr), len, host, sizeof host, serv, sizeof serv,
                    NI_NUMERICHOST | NI_NUMERICSERV) == 0) {
      ip = host;
      port = std::atoi(serv);
    }
  }
  socket_t socket() const override { return m_conn.fd; }

  std::size_t consumed() const { return m_consumed; }
  bool over_budget() const { return m_over_budget; }
  bool timed_out() const { return m_timed_out; }

 private:
  bool wait(short events, int timeout_ms) const {
    pollfd p{m_conn.fd, events, 0};
    int r;
    do r = ::poll(&p, 1, timeout_ms);
    while (r < 0 && errno == EINTR);
    return r > 0;
  }

  Conn& m_conn;
  Clock::time_point m_deadline;
  std::size_t m_budget, m_consumed = 0;
  bool m_over_budget = false, m_timed_out = false;
};

// What the worker thread serving a request needs to know about it, set
// around httplib's process_request and read by the callbacks it runs.
struct Current {
  ConnStream* stream = nullptr;
  std::size_t header_bytes = 0;  // the request line and headers
  bool close = false;            // a response asked to close the connection
  std::function<void()> sent;    // the response being written
};
thread_local Current t_current;

void run_sent() {
  auto sent = std::move(t_current.sent);
  t_current.sent = nullptr;
  if (sent) sent();
}

Request convert(const httplib::Request& in) {
  Request r;
  r.method = in.method;
  r.path = in.path;
  r.version = in.version;
  r.body = in.body;
  r.remote_addr = in.remote_addr;
  for (const auto& [k, v] : in.headers) r.headers.emplace(to_lower(k), v);
  r.content_type = in.get_header_value("Content-Type");
  r.multipart = in.is_multipart_form_data();
  for (const auto& [name, f] : in.files)
    r.parts.push_back({f.name, f.filename, f.content_type, f.content});
  r.bytes_in = in.body.size();
  return r;
}

void apply(Response from, httplib::Response& to) {
  to.status = from.status;
  for (const auto& [k, v] : from.headers) to.set_header(k, v);
  if (from.close) {
    to.set_header("Connection", "close");
    t_current.close = true;
  }
  to.set_content(from.body, from.content_type);
  run_sent();
  t_current.sent = std::move(from.sent);
}

// Checks of the framing that must hold before a body is read: one well-formed
// Content-Length within budget, no Content-Length beside chunked encoding
// (request smuggling), a Host header on HTTP/1.1.
std::optional<std::pair<int, std::string>> framing_error(const httplib::Request& req,
                                                         std::size_t max_body) {
  std::size_t lengths = req.get_header_value_count("Content-Length");
  bool chunked = req.has_header("Transfer-Encoding");
  if (lengths > 1) return {{400, "more than one Content-Length header"}};
  if (lengths == 1) {
    if (chunked) return {{400, "both Content-Length and Transfer-Encoding are set"}};
    std::string text = trim(req.get_header_value("Content-Length"));
    if (text.empty() || text.find_first_not_of("0123456789") != std::string::npos)
      return {{400, "Content-Length '" + text + "' is not a byte count"}};
    if (text.size() > 18 || std::stoull(text) > max_body)
      return {{413, "request body of " + text + " bytes is over the limit of " +
                        std::to_string(max_body) + " bytes"}};
  }
  if (chunked && to_lower(trim(req.get_header_value("Transfer-Encoding"))) != "chunked")
    return {{400, "Transfer-Encoding other than chunked is not supported"}};
  if (req.version == "HTTP/1.1" && !req.has_header("Host"))
    return {{400, "HTTP/1.1 request without a Host header"}};
  return std::nullopt;
}

// httplib::Server's request parser and writer, driven one request at a time.
class Engine : public httplib::Server {
 public:
  bool serve_one(httplib::Stream& stream, bool close, bool& closed) {
    return process_request(stream, close, closed, nullptr);
  }
};

class Lane {
 public:
  void start(int threads, std::function<void(Conn*)> work) {
    for (int i = 0; i < threads; ++i)
      m_threads.emplace_back([this, work] {
        for (;;) {
          Conn* conn = nullptr;
          {
            std::unique_lock<std::mutex> lock(m_mutex);
            m_cv.wait(lock, [&] { return m_stop || !m_queue.empty(); });
            if (m_queue.empty()) return;
            conn = m_queue.front();
            m_queue.pop_front();
          }
          work(conn);
        }
      });
  }
  void push(Conn* conn) {
    {
      std::lock_guard<std::mutex> lock(m_mutex);
      m_queue.push_back(conn);
    }
    m_cv.notify_one();
  }
  void stop_and_join() {
    {
      std::lock_guard<std::mutex> lock(m_mutex);
      m_stop = true;
    }
    m_cv.notify_all();
    for (auto& t : m_threads) t.join();
    m_threads.clear();
  }

 private:
  std::mutex m_mutex;
  std::condition_variable m_cv;
  std::deque<Conn*> m_queue;
  bool m_stop = false;
  std::vector<std::thread> m_threads;
};

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
  for (const char* probe : {"/health", "/ready", "/metrics"})
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

std::string Request::header(const std::string& lower_name) const {
  auto it = headers.find(lower_name);
  return it == headers.end() ? "" : it->second;
}

struct Server::Impl {
  ServerOptions options;
  Engine engine;
  Handler dispatcher;
  ErrorHandler on_error;
  Screen screen;
  int listen_fd = -1, epoll_fd = -1, wake_fd = -1;
  std::atomic<bool> draining{false};
  Lane main_lane, probe_lane;
  std::mutex returned_mutex;
  std::vector<Conn*> returned;             // from workers, back to the event thread
  std::atomic<int> busy{0};                // connections a worker holds or will hold
  std::unordered_map<int, Conn*> waiting;  // fd -> connection the event thread holds
  int open = 0;
  // Bodies the event thread reads before handing a request over, so a slow
  // upload holds no worker; bounded in total, larger ones go to a worker.
  std::size_t body_budget = std::size_t{256} << 20, body_reserved = 0;

  ~Impl() {
    for (auto& [fd, conn] : waiting) {
      ::close(fd);
      delete conn;
    }
    for (int fd : {listen_fd, epoll_fd, wake_fd})
      if (fd >= 0) ::close(fd);
  }

  std::size_t read_budget() const {
    // the header, the body, and room for chunk and multipart framing
    return options.max_header_bytes + options.max_body_bytes + options.max_body_bytes / 8 +
           (64 << 10);
  }

  void wake() {
    std::uint64_t one = 1;
    [[maybe_unused]] ssize_t n = ::write(wake_fd, &one, sizeof one);
  }

  // --- worker side ---------------------------------------------------------

  // Serves the requests whose headers have arrived; false when the
  // connection must close, true when it waits for the next request.
  bool serve_ready(Conn* conn) {
    for (;;) {
      ConnStream stream(*conn, after(options.body_timeout_s), read_budget());
      t_current = Current{};
      t_current.stream = &stream;
      bool close = draining.load();
      bool closed = false;
      bool ok = engine.serve_one(stream, close, closed);
      run_sent();  // a response whose write never reached the logger
      bool must_close =
          !ok || closed || close || t_current.close || stream.over_budget() || stream.timed_out();
      conn->served = true;
      t_current = Current{};
      if (must_close || (conn->peer_eof && !conn->has_header())) return false;
      if (!conn->has_header()) return true;  // back to the event thread to wait
      // pipelined: the next request is already here
    }
  }

  void serve(Conn* conn) {
    if (!serve_ready(conn)) conn->closing = true;
    {
      std::lock_guard<std::mutex> lock(returned_mutex);
      returned.push_back(conn);
    }
    --busy;
    wake();
  }

  // --- event thread ----------------------------------------------------------

  void watch(Conn* conn, double timeout_s) {
    conn->deadline = after(timeout_s);
    waiting[conn->fd] = conn;
    epoll_event ev{};
    ev.events = EPOLLIN | EPOLLRDHUP;
    ev.data.fd = conn->fd;
    epoll_ctl(epoll_fd, EPOLL_CTL_ADD, conn->fd, &ev);
  }

  void forget(Conn* conn) {
    epoll_ctl(epoll_fd, EPOLL_CTL_DEL, conn->fd, nullptr);
    waiting.erase(conn->fd);
  }

  void release(Conn* conn) {
    body_reserved -= conn->reserved;
    conn->reserved = 0;
    conn->need = 0;
  }

  void destroy(Conn* conn) {
    release(conn);
    ::close(conn->fd);
    --open;
    delete conn;
  }

  // Answers a request the event thread refuses itself (408, 431), then
  // closes gently: our side shuts, the client's remaining bytes are read and
  // dropped for a moment, so it sees the answer rather than a reset.
  void refuse(Conn* conn, int status, const std::string& reason) {
    Request req;
    req.remote_addr = conn->remote_ip;
    Response res = on_error(status, reason, req);
    std::string head =
        "HTTP/1.1 " + std::to_string(status) +
        (status == 408 ? " Request Timeout" : " Request Header Fields Too Large") +
        "\r\nContent-Type: " + res.content_type +
        "\r\nConnection: close\r\nContent-Length: " + std::to_string(res.body.size()) + "\r\n";
    for (const auto& [k, v] : res.headers) head += k + ": " + v + "\r\n";
    head += "\r\n" + res.body;
    [[maybe_unused]] ssize_t n =
        ::send(conn->fd, head.data(), head.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
    if (res.sent) res.sent();
    linger(conn);
  }

  void linger(Conn* conn) {
    ::shutdown(conn->fd, SHUT_WR);
    conn->closing = true;
    conn->in.clear();
    conn->pos = 0;
    if (waiting.count(conn->fd)) {
      conn->deadline = after(1.0);
    } else {
      watch(conn, 1.0);
    }
  }

  void dispatch(Conn* conn) {
    release(conn);
    forget(conn);
    ++busy;
    (is_probe(*conn) ? probe_lane : main_lane).push(conn);
  }

  void accept_all() {
    for (;;) {
      sockaddr_storage addr{};
      socklen_t len = sizeof addr;
      int fd = ::accept4(listen_fd, reinterpret_cast<sockaddr*>(&addr), &len,
                         SOCK_NONBLOCK | SOCK_CLOEXEC);
      if (fd < 0) {
        if (errno == EINTR || errno == ECONNABORTED) continue;
        return;  // EAGAIN, or out of descriptors until some close
      }
      if (open >= options.max_connections) {
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
      ++open;
      watch(conn, options.header_timeout_s);
    }
  }

  // A request is ready for a worker once its header, and a body the event
  // thread may read, are all here.
  bool ready(Conn* conn) {
    std::size_t header = conn->header_length();
    if (header == 0) return false;
    if (conn->need == 0) {
      auto body = simple_body_length(*conn, header);
      if (!body || *body == 0 || *body > options.max_body_bytes ||
          body_reserved + *body > body_budget)
        return true;  // no body, or one a worker reads (and the screen may refuse)
      conn->need = header + *body;
      conn->reserved = *body;
      body_reserved += *body;
      conn->deadline = after(options.body_timeout_s);
    }
    return conn->unread() >= conn->need;
  }

  void on_readable(Conn* conn) {
    char buf[16384];
    for (;;) {
      if (!conn->closing &&
          (conn->need ? conn->unread() >= conn->need : conn->unread() > options.max_header_bytes))
        break;  // enough for now
      ssize_t n = ::recv(conn->fd, buf, sizeof buf, MSG_DONTWAIT);
      if (n > 0) {
        if (conn->closing) continue;  // dropped
        if (!conn->started) {
          conn->started = true;
          conn->deadline = after(options.header_timeout_s);
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
    if (ready(conn) || (conn->peer_eof && conn->has_header())) return dispatch(conn);
    if (!conn->has_header() && conn->unread() > options.max_header_bytes)
      return refuse(
          conn, 431,
          "request header is larger than " + std::to_string(options.max_header_bytes) + " bytes");
    if (conn->peer_eof) {
      forget(conn);
      destroy(conn);
    }
  }

  void take_returned() {
    std::vector<Conn*> back;
    {
      std::lock_guard<std::mutex> lock(returned_mutex);
      back.swap(returned);
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
      // While draining, a client that just had an answer gets a moment to
      // send its next request, which is answered with Connection: close.
      double timeout = draining        ? 0.5
                       : conn->started ? options.header_timeout_s
                                       : options.idle_timeout_s;
      watch(conn, timeout);
    }
  }

  void expire() {
    auto now = Clock::now();
    std::vector<Conn*> due;
    for (auto& [fd, conn] : waiting)
      if (conn->deadline <= now) due.push_back(conn);
    for (Conn* conn : due) {
      if (conn->closing || !conn->started) {
        forget(conn);
        destroy(conn);
      } else {
        bool body = conn->need > 0;
        refuse(conn, 408,
               std::string(body ? "request body" : "request header") + " not received within " +
                   std::to_string(
                       static_cast<int>(body ? options.body_timeout_s : options.header_timeout_s)) +
                   " s");
      }
    }
  }

  void begin_drain() {
    accept_all();  // connections the kernel completed are accepted requests too
    epoll_ctl(epoll_fd, EPOLL_CTL_DEL, listen_fd, nullptr);
    ::close(listen_fd);
    listen_fd = -1;
    // Idle keep-alive connections close within a quarter of a second: at
    // once for a client that is really idle, yet a client that has just had
    // an answer and is sending its next request is answered (with
    // Connection: close) rather than reset. A request already under way, or
    // a connection just accepted, gets a second to arrive.
    for (auto& [fd, conn] : waiting) {
      if (conn->closing) continue;
      bool fresh = conn->started || !conn->served;
      conn->deadline = std::min(conn->deadline, after(fresh ? 1.0 : 0.25));
    }
  }

  void loop() {
    bool drained = false;
    epoll_event events[256];
    for (;;) {
      if (draining && !drained) {
        begin_drain();
        drained = true;
      }
      if (drained && busy == 0 && waiting.empty()) {
        std::lock_guard<std::mutex> lock(returned_mutex);
        if (returned.empty()) return;
      }
      int n = epoll_wait(epoll_fd, events, 256, 100);
      for (int i = 0; i < n; ++i) {
        int fd = events[i].data.fd;
        if (fd == listen_fd) {
          accept_all();
        } else if (fd == wake_fd) {
          std::uint64_t count;
          [[maybe_unused]] ssize_t r = ::read(wake_fd, &count, sizeof count);
        } else if (auto it = waiting.find(fd); it != waiting.end()) {
          on_readable(it->second);
        }
      }
      take_returned();
      expire();
    }
  }
};

Server::Server(ServerOptions options) : m_impl(std::make_unique<Impl>()) {
  m_impl->options = std::move(options);
  auto& s = m_impl->engine;
  s.set_payload_max_length(m_impl->options.max_body_bytes);
  s.set_keep_alive_timeout(static_cast<time_t>(m_impl->options.idle_timeout_s));
  s.set_keep_alive_max_count(1000);
}

Server::~Server() = default;

void Server::handle(Handler dispatcher, ErrorHandler on_error, Screen screen) {
  Impl& impl = *m_impl;
  impl.dispatcher = std::move(dispatcher);
  impl.on_error = std::move(on_error);
  impl.screen = std::move(screen);
  auto& s = impl.engine;
  std::size_t max_body = impl.options.max_body_bytes;
  std::size_t max_parts = impl.options.max_parts;

  // Headers only: framing, then the service's own screen. An answer here is
  // given before the body is read, so the connection closes after it.
  auto refuse_early = [&impl, max_body](const httplib::Request& req) -> std::optional<Response> {
    Request head = convert(req);
    head.bytes_in = 0;
    if (auto error = framing_error(req, max_body)) {
      Response res = impl.on_error(error->first, error->second, head);
      res.close = true;
      return res;
    }
    if (impl.screen) {
      if (auto res = impl.screen(head)) {
        res->close = true;
        return res;
      }
    }
    return std::nullopt;
  };
  s.set_expect_100_continue_handler(
      [refuse_early](const httplib::Request& req, httplib::Response& res) {
        auto refused = refuse_early(req);
        if (!refused) return 100;
        int status = refused->status;
        apply(std::move(*refused), res);
        return status;
      });
  s.set_pre_routing_handler([refuse_early](const httplib::Request& req, httplib::Response& res) {
    // httplib reads the header a byte at a time: what is consumed so far is it
    if (t_current.stream) t_current.header_bytes = t_current.stream->consumed();
    auto refused = refuse_early(req);
    if (!refused) return httplib::Server::HandlerResponse::Unhandled;
    apply(std::move(*refused), res);
    return httplib::Server::HandlerResponse::Handled;
  });

  auto route = [&impl](const httplib::Request& req, httplib::Response& res) {
    Request r = convert(req);
    if (t_current.stream)
      r.bytes_in = t_current.stream->consumed() -
                   std::min(t_current.stream->consumed(), t_current.header_bytes);
    apply(impl.dispatcher(r), res);
  };
  // Bodies arrive through a reader that counts them after decoding, so a
  // chunked or gzip body over budget stops at the budget.
  auto route_with_body = [&impl, max_body, max_parts](const httplib::Request& req,
                                                      httplib::Response& res,
                                                      const httplib::ContentReader& reader) {
    Request r = convert(req);
    std::size_t total = 0;
    bool too_large = false, too_many = false;
    auto count = [&](std::size_t n) {
      total += n;
      too_large = too_large || total > max_body;
      return !too_large;
    };
    bool ok;
    if (req.is_multipart_form_data()) {
      ok = reader(
          [&](const httplib::MultipartFormData& f) {
            if (r.parts.size() >= max_parts) {
              too_many = true;
              return false;
            }
            r.parts.push_back({f.name, f.filename, f.content_type, {}});
            return true;
          },
          [&](const char* data, std::size_t n) {
            if (!count(n) || r.parts.empty()) return false;
            r.parts.back().data.append(data, n);
            return true;
          });
    } else {
      ok = reader([&](const char* data, std::size_t n) {
        if (!count(n)) return false;
        r.body.append(data, n);
        return true;
      });
    }
    ConnStream* stream = t_current.stream;
    r.bytes_in =
        stream ? stream->consumed() - std::min(stream->consumed(), t_current.header_bytes) : total;
    Response out;
    if (too_large || (stream && stream->over_budget()))
      out = impl.on_error(413,
                          "request body is over the limit of " + std::to_string(max_body) +
                              " bytes (after transfer and content decoding)",
                          r);
    else if (too_many)
      out =
          impl.on_error(413, "more than " + std::to_string(max_parts) + " parts in one request", r);
    else if (stream && stream->timed_out())
      out = impl.on_error(408, "request body not received in time", r);
    else if (!ok)
      out = impl.on_error(400, "malformed request body (chunking, encoding or multipart)", r);
    else
      out = impl.dispatcher(r);
    if (!ok) out.close = true;
    apply(std::move(out), res);
  };
  const std::string any = R"([\s\S]*)";
  s.Get(any, route);
  s.Options(any, route);
  s.Post(any, route_with_body);
  s.Put(any, route_with_body);
  s.Delete(any, route_with_body);
  s.Patch(any, route_with_body);
  httplib::Server::HandlerWithResponse errors = [&impl](const httplib::Request& req,
                                                        httplib::Response& res) {
    if (!res.body.empty()) return httplib::Server::HandlerResponse::Unhandled;
    std::string reason =
        res.status == 413 ? "request body is over the limit" : "malformed HTTP request";
    Response out = impl.on_error(res.status, reason, convert(req));
    out.close = true;
    apply(std::move(out), res);
    return httplib::Server::HandlerResponse::Handled;
  };
  s.set_error_handler(errors);
  s.set_exception_handler(
      [&impl](const httplib::Request& req, httplib::Response& res, std::exception_ptr) {
        apply(impl.on_error(500, "internal error", convert(req)), res);
      });
  s.set_logger([](const httplib::Request&, const httplib::Response&) { run_sent(); });
}

int Server::bind() {
  Impl& impl = *m_impl;
  const auto& o = impl.options;
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  addrinfo* found = nullptr;
  std::string where = o.host + ":" + std::to_string(o.port);
  if (getaddrinfo(o.host.c_str(), std::to_string(o.port).c_str(), &hints, &found) != 0 || !found)
    throw IoError("cannot listen on " + where + " (unknown host)");
  std::string why = "in use, or not allowed";
  for (addrinfo* a = found; a && impl.listen_fd < 0; a = a->ai_next) {
    int fd = ::socket(a->ai_family, a->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, a->ai_protocol);
    if (fd < 0) continue;
    // SO_REUSEADDR allows a quick restart over TIME_WAIT sockets; no
    // SO_REUSEPORT, so a second server on a busy port fails here rather than
    // silently taking half of the connections.
    int yes = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof yes);
    if (::bind(fd, a->ai_addr, a->ai_addrlen) == 0 && ::listen(fd, SOMAXCONN) == 0) {
      impl.listen_fd = fd;
    } else {
      why = std::strerror(errno);
      ::close(fd);
    }
  }
  freeaddrinfo(found);
  if (impl.listen_fd < 0) throw IoError("cannot listen on " + where + " (" + why + ")");
  sockaddr_storage addr{};
  socklen_t len = sizeof addr;
  getsockname(impl.listen_fd, reinterpret_cast<sockaddr*>(&addr), &len);
  int port = addr.ss_family == AF_INET6 ? ntohs(reinterpret_cast<sockaddr_in6*>(&addr)->sin6_port)
                                        : ntohs(reinterpret_cast<sockaddr_in*>(&addr)->sin_port);
  impl.epoll_fd = epoll_create1(EPOLL_CLOEXEC);
  impl.wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  for (int fd : {impl.listen_fd, impl.wake_fd}) {
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.fd = fd;
    epoll_ctl(impl.epoll_fd, EPOLL_CTL_ADD, fd, &ev);
  }
  return port;
}

void Server::run() {
  Impl& impl = *m_impl;
  impl.main_lane.start(std::max(1, impl.options.threads), [&impl](Conn* c) { impl.serve(c); });
  impl.probe_lane.start(std::max(1, impl.options.probe_threads),
                        [&impl](Conn* c) { impl.serve(c); });
  impl.loop();
  impl.main_lane.stop_and_join();
  impl.probe_lane.stop_and_join();
}

std::string Server::serve_bytes(std::string_view input) {
  Impl& impl = *m_impl;
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
      if (!impl.serve_ready(&conn)) break;
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

void Server::stop() {
  m_impl->draining = true;
  if (m_impl->wake_fd >= 0) m_impl->wake();
}

}  // namespace cd::http
