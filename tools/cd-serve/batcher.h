// The inference worker of cd-serve: HTTP threads submit preprocessed images;
// one thread forms dynamic batches and runs them. A batch starts as soon as
// it is full, or when no admitted image is still being decoded, or at
// max_delay after its first image, whichever comes first: a lone request
// never waits for company that is not coming.
//
// Admission bounds the work in memory: at most max_in_flight images are
// being decoded or queued at once (enough to keep the worker fed), however
// many connections are open; the others wait before decoding, holding only
// their request bytes. When queue_capacity images are already waiting or in
// flight, admit() refuses at once, so overload costs a 503 and no decode.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <future>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "runtime/predictor.h"

namespace cd::serve {

struct BatcherOptions {
  int max_batch = 4;
  double max_delay_ms = 5.0;
  std::size_t queue_capacity = 256;
  // Images being decoded or queued at once. 0: max_batch + 2, the next batch
  // decoding while the worker runs one; measured on 2 cores, three batches'
  // worth added ~20 MB of peak RSS and no throughput.
  int max_in_flight = 0;
};

// One image's answer and where its time went inside the worker.
struct Inference {
  float p_dog = 0;
  double queue_s = 0;                              // from submit() to the start of its forward pass
  double forward_s = 0;                            // its batch's forward pass
  int batch = 0;                                   // images in that pass
  std::chrono::steady_clock::time_point answered;  // when the pass ended
};

class Batcher {
 public:
  // Called after every batch with its size (for metrics).
  Batcher(BatcherOptions options, std::function<void(int)> on_batch);
  ~Batcher();

  // Waits for room to decode one more image, then counts it as on its way:
  // the worker may wait for it to fill a batch. Every admitted image is then
  // either submit()ted with admitted = true, or withdraw()n. Returns false at
  // once when queue_capacity images are already waiting or in flight, or
  // when stopping.
  bool admit();
  void withdraw();

  // Returns an invalid future when the queue is full. The model snapshot
  // travels with the image, so a reload never mixes two models in one batch.
  // image: 3 x S x S floats, as preprocess_into writes them for the model.
  std::future<Inference> submit(std::shared_ptr<Predictor> model, std::vector<float> image,
                                bool admitted = false);
  std::size_t depth() const;
  void stop();  // finishes every queued job, then ends the worker

 private:
  using Clock = std::chrono::steady_clock;
  struct Job {
    std::shared_ptr<Predictor> model;
    std::vector<float> image;
    Clock::time_point queued;
    std::promise<Inference> result;
  };
  void work();

  BatcherOptions m_options;
  std::function<void(int)> m_on_batch;
  mutable std::mutex m_mutex;
  std::condition_variable m_changed;
  std::condition_variable m_room;  // for admit()
  std::deque<Job> m_queue;
  int m_in_flight_limit;
  int m_decoding = 0;                              // admitted, not yet submitted or withdrawn
  int m_waiting = 0;                               // in admit()
  std::uint64_t m_next_ticket = 0, m_serving = 0;  // admit() is first come, first served
  bool m_stopping = false;
  std::vector<float> m_rows;  // the worker's batch buffer, reused
  std::thread m_thread;
};

}  // namespace cd::serve
