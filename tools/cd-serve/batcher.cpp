#include "cd-serve/batcher.h"

#include <algorithm>
#include <vector>

#include "util/errors.h"

namespace cd::serve {

Batcher::Batcher(BatcherOptions options, std::function<void(int)> on_batch)
    : m_options(options),
      m_on_batch(std::move(on_batch)),
      m_in_flight_limit(options.max_in_flight > 0 ? options.max_in_flight
                                                  : std::max(1, options.max_batch) + 2),
      m_thread([this] { work(); }) {}

Batcher::~Batcher() { stop(); }

bool Batcher::admit() {
  std::unique_lock<std::mutex> lock(m_mutex);
  auto in_flight = [this] { return m_decoding + static_cast<int>(m_queue.size()); };
  if (m_stopping || static_cast<std::size_t>(m_waiting + in_flight()) >= m_options.queue_capacity)
    return false;
  ++m_waiting;
  const std::uint64_t ticket = m_next_ticket++;
  m_room.wait(
      lock, [&] { return m_stopping || (ticket == m_serving && in_flight() < m_in_flight_limit); });
  --m_waiting;
  ++m_serving;
  m_room.notify_all();  // the next ticket may fit too
  if (m_stopping) return false;
  ++m_decoding;
  return true;
}

void Batcher::withdraw() {
  {
    std::lock_guard<std::mutex> lock(m_mutex);
    if (m_decoding > 0) --m_decoding;
  }
  m_changed.notify_all();  // the worker may be waiting for this one
  m_room.notify_all();
}

std::future<Inference> Batcher::submit(std::shared_ptr<Predictor> model, std::vector<float> image,
                                       bool admitted) {
  std::lock_guard<std::mutex> lock(m_mutex);
  if (admitted && m_decoding > 0) --m_decoding;
  if (m_stopping || m_queue.size() >= m_options.queue_capacity) {
    m_changed.notify_all();
    m_room.notify_all();
    return {};
  }
  m_queue.push_back({std::move(model), std::move(image), Clock::now(), {}});
  std::future<Inference> f = m_queue.back().result.get_future();
  m_changed.notify_all();
  return f;
}

std::size_t Batcher::depth() const {
  std::lock_guard<std::mutex> lock(m_mutex);
  return m_queue.size();
}

void Batcher::stop() {
  {
    std::lock_guard<std::mutex> lock(m_mutex);
    m_stopping = true;
  }
  m_changed.notify_all();
  m_room.notify_all();
  if (m_thread.joinable()) m_thread.join();
}

void Batcher::work() {
  for (;;) {
    std::vector<Job> batch;
    {
      std::unique_lock<std::mutex> lock(m_mutex);
      m_changed.wait(lock, [this] { return m_stopping || !m_queue.empty(); });
      if (m_queue.empty()) return;  // stopping, and everything is done
      auto deadline = m_queue.front().queued +
                      std::chrono::microseconds(static_cast<long>(m_options.max_delay_ms * 1000));
      m_changed.wait_until(lock, deadline, [&] {
        return m_stopping || static_cast<int>(m_queue.size()) >= m_options.max_batch ||
               m_decoding == 0;
      });
      auto model = m_queue.front().model;
      while (!m_queue.empty() && static_cast<int>(batch.size()) < m_options.max_batch &&
             m_queue.front().model == model) {
        batch.push_back(std::move(m_queue.front()));
        m_queue.pop_front();
      }
    }
    m_room.notify_all();
    auto start = Clock::now();
    try {
      std::size_t per_image = batch.front().image.size();
      m_rows.resize(per_image * batch.size());
      for (std::size_t i = 0; i < batch.size(); ++i) {
        if (batch[i].image.size() != per_image)
          throw DataError("images of unequal size in a batch");
        std::copy(batch[i].image.begin(), batch[i].image.end(), m_rows.begin() + i * per_image);
        std::vector<float>().swap(batch[i].image);
      }
      std::vector<float> p = batch.front().model->predict(m_rows.data(), batch.size());
      auto end = Clock::now();
      double forward = std::chrono::duration<double>(end - start).count();
      for (std::size_t i = 0; i < batch.size(); ++i)
        batch[i].result.set_value({p[i],
                                   std::chrono::duration<double>(start - batch[i].queued).count(),
                                   forward, static_cast<int>(batch.size()), end});
    } catch (...) {
      for (auto& job : batch) job.result.set_exception(std::current_exception());
    }
    if (m_on_batch) m_on_batch(static_cast<int>(batch.size()));
  }
}

}  // namespace cd::serve
