// The HTTP layer of cd-serve: cpp-httplib parses and writes each request, and
// this layer owns the sockets around it, so route handlers see only plain
// Request and Response structs.
//
// Connections are not tied to threads. One event thread accepts, waits for a
// request's complete header (within a size and a time budget) and only then
// hands the connection to a worker; an idle or slow client therefore holds a
// file descriptor, never a thread. Probes (GET /health, /ready, /metrics) run
// on their own small pool, so neither slow clients nor a full inference queue
// can delay them. Bodies are counted as they arrive, after transfer and
// content decoding, and refused once over budget.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace cd::http {

struct Part {
  std::string name, filename, content_type, data;
};

struct Request {
  std::string method, path, version, body, content_type, remote_addr;
  std::multimap<std::string, std::string> headers;  // lower-case names
  std::vector<Part> parts;                          // multipart/form-data, in order
  bool multipart = false;
  std::size_t bytes_in = 0;  // body bytes as they arrived on the socket
  std::string header(const std::string& lower_name) const;
};

struct Response {
  int status = 200;
  std::string content_type = "application/json";
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;
  // Run by the server once the response has been written to the socket (or
  // the write failed): where a request's log line and metrics are recorded.
  std::function<void()> sent;
  // Close the connection after this response (set for answers given before
  // the body was read, whose unread bytes cannot be parsed as a next request).
  bool close = false;
};

using Handler = std::function<Response(const Request&)>;
// Errors the HTTP layer finds itself: 400 malformed, 408 header too slow,
// 413 over a budget, 431 header too large; `reason` says which in words.
using ErrorHandler = std::function<Response(int status, const std::string& reason, const Request&)>;
// Called with the request line and headers before any body byte is read: a
// response refuses the request there (404, 405, 401...), nullopt goes on.
using Screen = std::function<std::optional<Response>(const Request& head)>;

struct ServerOptions {
  std::string host = "0.0.0.0";
  int port = 8000;                        // 0: any free port
  int threads = 128;                      // workers for requests other than probes
  std::size_t max_body_bytes = 10 << 20;  // after transfer and content decoding
  std::size_t max_parts = 64;             // multipart parts per request
  std::size_t max_header_bytes = 16 << 10;
  double header_timeout_s = 10;  // from a request's first byte to its blank line
  double idle_timeout_s = 5;     // a keep-alive connection with no request
  double body_timeout_s = 60;    // reading one request's body
  int max_connections = 4096;    // open at once; more are answered 503 and closed
  int probe_threads = 2;
  // A client that sends requests and never reads the answers: requests it
  // may pipeline ahead of its answers, bytes of answers queued in the kernel
  // for it, and seconds a write may make no progress. Past any, it is closed.
  int max_pipelined = 32;
  std::size_t max_unread_bytes = 1 << 20;
  double write_stall_s = 2;
};

class Server {
 public:
  explicit Server(ServerOptions options);
  ~Server();
  void handle(Handler dispatcher, ErrorHandler on_error, Screen screen = {});
  int bind();  // returns the bound port; throws IoError (a port in use included)
  // Blocks until stop(). Then: no new connections, idle ones closed at once,
  // every request already received answered (with Connection: close).
  void run();
  void stop();

  // One connection on which a client sent `input` and then shut down its
  // side, served on the calling thread through the same parser, screen and
  // handlers; returns every byte the server wrote. For tests and fuzzing.
  std::string serve_bytes(std::string_view input);

 private:
  struct Impl;
  std::unique_ptr<Impl> m_impl;
};

}  // namespace cd::http
