#include "cd-serve/http/lane.h"

namespace cd::http {

void Lane::start(int threads, std::function<void(Conn*)> work) {
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

void Lane::push(Conn* conn) {
  {
    std::lock_guard<std::mutex> lock(m_mutex);
    m_queue.push_back(conn);
  }
  m_cv.notify_one();
}

void Lane::stop_and_join() {
  {
    std::lock_guard<std::mutex> lock(m_mutex);
    m_stop = true;
  }
  m_cv.notify_all();
  for (auto& t : m_threads) t.join();
  m_threads.clear();
}

}  // namespace cd::http
