// The HTTP layer of cd-serve: cpp-httplib stays behind this wrapper, so route
// handlers see only plain Request and Response structs.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace cd::http {

struct Part {
  std::string name, filename, content_type, data;
};

struct Request {
  std::string method, path, body, content_type, remote_addr;
  std::multimap<std::string, std::string> headers;  // lower-case names
  std::vector<Part> parts;                          // multipart/form-data, in order
  bool multipart = false;
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
};

using Handler = std::function<Response(const Request&)>;
// For errors httplib raises itself (413 body too large, 400 malformed request).
using ErrorHandler = std::function<Response(int status, const Request&)>;

struct ServerOptions {
  std::string host = "0.0.0.0";
  int port = 8000;  // 0: any free port
  int threads = 128;
  std::size_t max_body_bytes = 10 << 20;
};

class Server {
 public:
  explicit Server(ServerOptions options);
  ~Server();
  void handle(Handler dispatcher, ErrorHandler on_error);
  int bind();  // returns the bound port; throws IoError
  void run();  // blocks until stop(); in-flight requests finish first
  void stop();

 private:
  struct Impl;
  std::unique_ptr<Impl> m_impl;
};

}  // namespace cd::http
