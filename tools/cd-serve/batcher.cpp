#include "cd-serve/batcher.h"

#include <ATen/ATen.h>

#include <vector>

namespace cd::serve {

Batcher::Batcher(BatcherOptions options, std::function<void(int)> on_batch)
    : m_options(options), m_on_batch(std::move(on_batch)), m_thread([this] { work(); }) {}

Batcher::~Batcher() { stop(); }

std::future<float> Batcher::submit(std::shared_ptr<Classifier> model, at::Tensor image) {
  std::lock_guard<std::mutex> lock(m_mutex);
  if (m_stopping || m_queue.size() >= m_options.queue_capacity) return {};
  m_queue.push_back({std::move(model), std::move(image), {}});
  std::future<float> f = m_queue.back().result.get_future();
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
  if (m_thread.joinable()) m_thread.join();
}

void Batcher::work() {
  for (;;) {
    std::vector<Job> batch;
    {
      std::unique_lock<std::mutex> lock(m_mutex);
      m_changed.wait(lock, [this] { return m_stopping || !m_queue.empty(); });
      if (m_queue.empty()) return;  // stopping, and everything is done
      auto deadline = std::chrono::steady_clock::now() +
                      std::chrono::microseconds(static_cast<long>(m_options.max_delay_ms * 1000));
      auto same_model_ready = [&] {
        return static_cast<int>(m_queue.size()) >= m_options.max_batch;
      };
      if (!m_stopping)
        m_changed.wait_until(lock, deadline, [&] { return m_stopping || same_model_ready(); });
      auto model = m_queue.front().model;
      while (!m_queue.empty() && static_cast<int>(batch.size()) < m_options.max_batch &&
             m_queue.front().model == model) {
        batch.push_back(std::move(m_queue.front()));
        m_queue.pop_front();
      }
    }
    try {
      std::vector<at::Tensor> images;
      for (auto& job : batch) images.push_back(job.image);
      std::vector<float> p = batch.front().model->predict(at::stack(images));
      for (std::size_t i = 0; i < batch.size(); ++i) batch[i].result.set_value(p[i]);
    } catch (...) {
      for (auto& job : batch) job.result.set_exception(std::current_exception());
    }
    if (m_on_batch) m_on_batch(static_cast<int>(batch.size()));
  }
}

}  // namespace cd::serve
