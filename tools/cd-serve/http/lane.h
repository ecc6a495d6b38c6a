// A worker lane of cd-serve's HTTP stack: threads taking connections off one
// queue, in the order they were pushed. The event loop (event_loop.h) keeps
// two, one for requests and one for probes. Internal to cd-serve.
#pragma once

#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

#include "cd-serve/http/connection.h"

namespace cd::http {

class Lane {
 public:
  Lane() = default;
  Lane(const Lane&) = delete;
  Lane& operator=(const Lane&) = delete;
  ~Lane() { stop_and_join(); }

  // `threads` workers, each running `work` on one connection at a time.
  void start(int threads, std::function<void(Conn*)> work);
  void push(Conn* conn);
  void stop_and_join();  // the queue is served to its end first

 private:
  std::mutex m_mutex;
  std::condition_variable m_cv;
  std::deque<Conn*> m_queue;
  bool m_stop = false;
  std::vector<std::thread> m_threads;
};

}  // namespace cd::http
