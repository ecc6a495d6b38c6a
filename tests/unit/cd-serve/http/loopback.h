// cd-serve's HTTP layer (cd::http::Server) on a loopback port, with a
// dispatcher that records the plain Request it was given and answers 201, and
// an error handler that answers the status as JSON.
#pragma once

#include <httplib.h>

#include <mutex>
#include <string>
#include <thread>
#include <utility>

#include "cd-serve/http/http.h"

namespace cd::test {

// cd-serve's HTTP layer on a loopback port, with a dispatcher that records
// the plain Request it was given.
class LoopbackServer {
 public:
  explicit LoopbackServer(std::size_t max_body = 1 << 20)
      : LoopbackServer(cd::http::ServerOptions{"127.0.0.1", 0, 2, max_body}) {}
  explicit LoopbackServer(cd::http::ServerOptions options) : m_server(std::move(options)) {
    m_server.handle(
        [this](const cd::http::Request& req) {
          std::lock_guard<std::mutex> lock(m_mutex);
          m_last = req;
          cd::http::Response res{201, "text/plain", "seen " + req.method + " " + req.path};
          res.headers.emplace_back("X-Test", "yes");
          return res;
        },
        [](int status, const std::string&, const cd::http::Request&) {
          return cd::http::Response{status, "application/json",
                                    "{\"handled\":" + std::to_string(status) + "}"};
        });
    m_port = m_server.bind();
    m_thread = std::thread([this] { m_server.run(); });
  }
  ~LoopbackServer() {
    m_server.stop();
    m_thread.join();
  }
  httplib::Client client() const { return httplib::Client("127.0.0.1", m_port); }
  int port() const { return m_port; }
  cd::http::Request last() {
    std::lock_guard<std::mutex> lock(m_mutex);
    return m_last;
  }

 private:
  cd::http::Server m_server;
  int m_port = 0;
  std::thread m_thread;
  std::mutex m_mutex;
  cd::http::Request m_last;
};

}  // namespace cd::test
