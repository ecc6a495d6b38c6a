// The cpp-httplib side of cd-serve's HTTP layer: a stream over a connection
// the event loop has filled, httplib's parser and writer driven one request at
// a time on it, and the conversions between httplib's types and ours.
#include <httplib.h>

#include <linux/sockios.h>
#include <netdb.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <functional>
#include <optional>

#include "cd-serve/http/connection.h"
#include "util/strings.h"

namespace cd::http {

namespace {

// The socket as httplib reads and writes it: bytes already received first,
// then the socket, within this request's deadline and byte budget.
class ConnStream final : public httplib::Stream {
 public:
  ConnStream(Conn& conn, Clock::time_point deadline, std::size_t budget,
             const ServerOptions& options)
      : m_conn(conn), m_deadline(deadline), m_budget(budget), m_options(options) {}

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

  // Output a client does not read is bounded twice: by the answer bytes
  // still queued in the kernel for it (max_unread_bytes), and by how long a
  // write may make no progress (write_stall_s). Past either the write fails
  // and the connection closes, so no worker waits on such a client.
  ssize_t write(const char* ptr, size_t size) override {
    // Sent and not yet acknowledged: past what the client's receive buffer
    // took, the answers it has not read.
    int queued = 0;
    if (ioctl(m_conn.fd, SIOCOUTQ, &queued) == 0 &&
        static_cast<std::size_t>(queued) > m_options.max_unread_bytes) {
      m_unread_overflow = true;
      return -1;
    }
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
      auto stall = after(m_options.write_stall_s);
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(std::min(deadline, stall) -
                                                                        Clock::now());
      if (left.count() <= 0 || !wait(POLLOUT, static_cast<int>(left.count()))) {
        m_unread_overflow = true;
        return -1;
      }
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
  bool unread_overflow() const { return m_unread_overflow; }

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
  const ServerOptions& m_options;
  bool m_over_budget = false, m_timed_out = false, m_unread_overflow = false;
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

}  // namespace

// Pipelined requests served on one connection before it goes back to the
// end of the queue.
constexpr int k_turn = 4;

struct Exchange::Impl {
  ServerOptions options;
  Engine engine;
  Handler dispatcher;
  ErrorHandler on_error;
  Screen screen;

  std::size_t read_budget() const {
    // the header, the body, and room for chunk and multipart framing
    return options.max_header_bytes + options.max_body_bytes + options.max_body_bytes / 8 +
           (64 << 10);
  }
};

Exchange::Exchange(const ServerOptions& options) : m_impl(std::make_unique<Impl>()) {
  m_impl->options = options;
  auto& s = m_impl->engine;
  s.set_payload_max_length(options.max_body_bytes);
  s.set_keep_alive_timeout(static_cast<time_t>(options.idle_timeout_s));
  s.set_keep_alive_max_count(1000);
}

Exchange::~Exchange() = default;

void Exchange::handle(Handler dispatcher, ErrorHandler on_error, Screen screen) {
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

bool Exchange::serve_ready(Conn& conn, const std::atomic<bool>& draining) {
  Impl& impl = *m_impl;
  for (int turn = 1;; ++turn) {
    ConnStream stream(conn, after(impl.options.body_timeout_s), impl.read_budget(), impl.options);
    t_current = Current{};
    t_current.stream = &stream;
    bool close = draining.load();
    bool closed = false;
    bool ok = impl.engine.serve_one(stream, close, closed);
    run_sent();  // a response whose write never reached the logger
    bool must_close = !ok || closed || close || t_current.close || stream.over_budget() ||
                      stream.timed_out() || stream.unread_overflow();
    conn.served = true;
    t_current = Current{};
    if (must_close || (conn.peer_eof && !conn.has_header())) return false;
    if (!conn.has_header()) {  // the client waits for its answers: back to wait with it
      conn.pipelined = 0;
      conn.bulk = false;
      return true;
    }
    // Pipelined: the next request was already here. A client that keeps
    // sending without reading is closed past max_pipelined; short of that
    // it is served a few requests per turn, so one connection never holds a
    // worker, and after its first turn never a probe worker.
    if (++conn.pipelined >= impl.options.max_pipelined) return false;
    if (turn >= k_turn) {
      conn.bulk = true;
      return true;
    }
  }
}

}  // namespace cd::http
