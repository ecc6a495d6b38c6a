// cd-serve's request handling, apart from sockets and signals: routing,
// authentication, predictions through the batcher, metrics and errors.
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <future>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "cd-serve/batcher.h"
#include "cd-serve/http/http.h"
#include "cd-serve/registered.h"
#include "cd-serve/serve.h"
#include "domain/image.h"
#include "util/prometheus.h"

namespace cd::serve {

struct LoadedModel {
  std::shared_ptr<Predictor> model;
  std::string version;  // content hash of the model file
  std::string loaded_at;
  Registered registered;  // set when the model came from the Model Registry
};

class Service {
 public:
  explicit Service(const ServeParams& params);
  ~Service();
  const ServeParams& params() const { return m_params; }

  // The response's `sent` callback records the request's log line and
  // metrics; the HTTP layer runs it after writing (tests call it directly).
  http::Response dispatch(const http::Request& req);
  // Before the body is read: the refusals the request line and headers
  // decide (404, 405, 401, 415, 400 for bytes that are not UTF-8).
  std::optional<http::Response> screen(const http::Request& head);
  http::Response on_http_error(int status, const std::string& reason, const http::Request& req);

  // Loads and warms up the model file; keeps the old model on failure.
  // One thread calls these two, one at a time (server.cpp's Reloader).
  bool load_model();
  // For a models:/NAME@ALIAS model: reloads when the alias has moved, and
  // tries a version whose load failed again only after a SIGHUP.
  void follow_registry();
  bool from_registry() const { return m_registry_uri.has_value(); }
  void begin_drain() { m_draining = true; }
  void stop_worker() { m_batcher.stop(); }

 private:
  http::Response health();
  http::Response ready();
  http::Response model_info();
  // Where one request's time went, stage by stage (seconds): the images'
  // decode and preprocess times add up, queue and forward are the slowest
  // image's, respond runs from its answer to the last byte written.
  struct Stages {
    double decode = 0, preprocess = 0, queue = 0, forward = 0;
    int images = 0, batch = 0;
    std::chrono::steady_clock::time_point answered;
  };
  // Two halves of one prediction, so a batch request can queue all of its
  // images before waiting: submit() preprocesses and queues, finish() waits.
  struct Pending {
    std::shared_ptr<LoadedModel> model;
    std::future<Inference> result;
    std::chrono::steady_clock::time_point start, admitted;
    bool costly = false;  // refused: its decoding went over the work budget
  };
  // Checks readiness, admits, fills the model's input (a decoded image, or a
  // client's tensor) and queues it; on false, `error` is the answer.
  using Fill = std::function<bool(const PreprocessSpec& spec, float* input)>;
  bool enqueue(Pending& pending, http::Response& error, const Fill& fill);
  bool submit(const std::string& bytes, Pending& pending, Stages& stages, http::Response& error);
  nlohmann::ordered_json finish(Pending& pending, Stages& stages);
  http::Response route(const http::Request& req, std::string& route_label, Stages& stages);
  std::optional<http::Response> refusal(const http::Request& req, std::string& route_label) const;
  // Adds the request id and the `sent` callback that logs and counts it.
  http::Response finalize(const http::Request& req, http::Response res, const std::string& label,
                          std::chrono::steady_clock::time_point t0, const Stages& stages);
  std::string request_id(const http::Request& req);
  http::Response predict(const http::Request& req, Stages& stages);
  http::Response predict_batch(const http::Request& req, Stages& stages);
  // The Open Inference Protocol's routes (v2_routes.cpp). The refusal
  // matches /v2 paths to route labels, with the protocol's error bodies.
  std::optional<http::Response> v2_refusal(const http::Request& req, std::string& label) const;
  http::Response v2_route(const http::Request& req, const std::string& label, Stages& stages);
  http::Response v2_model_metadata();
  http::Response v2_infer(const http::Request& req, Stages& stages);
  bool authorized(const http::Request& req) const;
  std::shared_ptr<LoadedModel> current() const;

  ServeParams m_params;
  std::string m_api_key;
  prom::Registry m_metrics;
  Batcher m_batcher;
  mutable std::mutex m_model_mutex;
  std::shared_ptr<LoadedModel> m_loaded;
  std::optional<registry::ModelUri> m_registry_uri;
  std::string m_failed_version;  // the registered version whose load failed last
  std::atomic<bool> m_ready{false}, m_draining{false};
  std::atomic<long> m_served{0}, m_request_seq{0};
  std::atomic<long long> m_latency_sum_us{0};
};

http::Response json_error(int status, const std::string& message, const std::string& type);
// The Open Inference Protocol's error: {"error": message}.
http::Response v2_error(int status, const std::string& message);

// --max-batch 0 (the default): twice the compute threads, from 2 to 32.
// Measured on 2 cores (docs/serving.md): a forward pass costs
// about the same per image from batch 4 up, while its activations grow with
// the batch, so larger batches only add memory and latency.
int resolve_max_batch(int requested, int threads);

}  // namespace cd::serve
