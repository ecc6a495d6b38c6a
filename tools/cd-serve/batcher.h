// The inference worker of cd-serve: HTTP threads submit preprocessed images;
// one thread forms dynamic batches (up to max_batch, waiting at most
// max_delay after the first) and runs them. The queue is bounded: a full
// queue is refused at once, so overload costs a 503, not memory.
#pragma once

#include <ATen/Tensor.h>

#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <future>
#include <memory>
#include <mutex>
#include <thread>

#include "nn/classifier.h"

namespace cd::serve {

struct BatcherOptions {
  int max_batch = 16;
  double max_delay_ms = 5.0;
  std::size_t queue_capacity = 256;
};

class Batcher {
 public:
  // Called after every batch with its size (for metrics).
  Batcher(BatcherOptions options, std::function<void(int)> on_batch);
  ~Batcher();

  // Returns an invalid future when the queue is full. The model snapshot
  // travels with the image, so a reload never mixes two models in one batch.
  std::future<float> submit(std::shared_ptr<Classifier> model, at::Tensor image);
  std::size_t depth() const;
  void stop();  // finishes every queued job, then ends the worker

 private:
  struct Job {
    std::shared_ptr<Classifier> model;
    at::Tensor image;
    std::promise<float> result;
  };
  void work();

  BatcherOptions m_options;
  std::function<void(int)> m_on_batch;
  mutable std::mutex m_mutex;
  std::condition_variable m_changed;
  std::deque<Job> m_queue;
  bool m_stopping = false;
  std::thread m_thread;
};

}  // namespace cd::serve
