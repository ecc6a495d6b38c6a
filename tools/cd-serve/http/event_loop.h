// cd-serve's event thread (event_loop.cpp): one epoll loop owns every socket
// while it waits for a request's complete header, within the size and time
// budgets, then hands the connection to a worker lane (lane.h; probes to their own),
// which serves it through the Exchange and gives it back. Internal to cd-serve;
// http.h is the interface.
#pragma once

#include <atomic>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "cd-serve/http/connection.h"
#include "cd-serve/http/lane.h"

namespace cd::http {

class EventLoop {
 public:
  EventLoop(const ServerOptions& options, Exchange& exchange);
  ~EventLoop();
  EventLoop(const EventLoop&) = delete;
  EventLoop& operator=(const EventLoop&) = delete;
  // For the answers the event thread gives itself (408, 431).
  void set_error_handler(ErrorHandler on_error);
  int bind();  // returns the bound port; throws IoError
  // Starts the lanes and loops until stop() has drained every connection.
  void run();
  void stop();  // from any thread

 private:
  void wake();
  void serve(Conn* conn);
  void watch(Conn* conn, double timeout_s);
  void forget(Conn* conn);
  void release(Conn* conn);
  void destroy(Conn* conn);
  // Answers a request the event thread refuses itself (408, 431), then
  // closes gently: our side shuts, the client's remaining bytes are read and
  // dropped for a moment, so it sees the answer rather than a reset.
  void refuse(Conn* conn, int status, const std::string& reason);
  bool header_too_large(const Conn& conn) const;
  void refuse_header(Conn* conn);
  void linger(Conn* conn);
  void dispatch(Conn* conn);
  void accept_all();
  // A request is ready for a worker once its header, and a body the event
  // thread may read, are all here.
  bool ready(Conn* conn);
  void on_readable(Conn* conn);
  void take_returned();
  void expire();
  void begin_drain();
  void loop();

  const ServerOptions& m_options;
  Exchange& m_exchange;
  ErrorHandler m_on_error;
  int m_listen_fd = -1, m_epoll_fd = -1, m_wake_fd = -1;
  std::atomic<bool> m_draining{false};
  Lane m_main_lane, m_probe_lane;
  std::mutex m_returned_mutex;
  std::vector<Conn*> m_returned;             // from workers, back to the event thread
  std::atomic<int> m_busy{0};                // connections a worker holds or will hold
  std::unordered_map<int, Conn*> m_waiting;  // fd -> connection the event thread holds
  int m_open = 0;
  // Bodies the event thread reads before handing a request over, so a slow
  // upload holds no worker; bounded in total, larger ones go to a worker.
  std::size_t m_body_budget = std::size_t{256} << 20, m_body_reserved = 0;
};

}  // namespace cd::http
