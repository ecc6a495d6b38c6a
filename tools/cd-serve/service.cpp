#include "cd-serve/service.h"

#include <malloc.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <fstream>
#include <limits>

#include <spdlog/spdlog.h>

#include "cd-serve/pages.h"
#include "domain/image.h"
#include "domain/labels.h"
#include "domain/model_file.h"
#include "util/atomic_file.h"
#include "util/errors.h"
#include "util/hash.h"
#include "util/log.h"
#include "util/parallel.h"
#include "util/strings.h"

namespace cd::serve {

namespace {

using json = nlohmann::ordered_json;

double since_ms(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
}

double resident_bytes() {
  std::ifstream statm("/proc/self/statm");
  long pages = 0, resident = 0;
  statm >> pages >> resident;
  return static_cast<double>(resident) * sysconf(_SC_PAGESIZE);
}

double cpu_seconds() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return u.ru_utime.tv_sec + u.ru_stime.tv_sec + (u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e6;
}

bool constant_time_equal(const std::string& a, const std::string& b) {
  if (a.size() != b.size()) return false;
  unsigned char diff = 0;
  for (std::size_t i = 0; i < a.size(); ++i) diff |= static_cast<unsigned char>(a[i] ^ b[i]);
  return diff == 0;
}

double p_dog_reference(const ModelMeta& meta) {
  auto it = meta.val_metrics.find("p_dog_mean");
  return it != meta.val_metrics.end() && it->is_number() ? it->get<double>()
                                                         : std::numeric_limits<double>::quiet_NaN();
}

const std::vector<double> k_latency_buckets{0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
                                            0.5,   1,    2.5,   5,    10};
const std::vector<double> k_stage_buckets{0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
                                          0.05,   0.1,   0.25,   0.5,   1,    2.5};

double seconds(std::chrono::steady_clock::duration d) {
  return std::chrono::duration<double>(d).count();
}

// A .cdm model's large LibTorch buffers stay mapped for reuse up to this many
// idle bytes (nn/buffer_cache.h): a steady load then faults no pages.
constexpr std::size_t k_tensor_cache_bytes = std::size_t{128} << 20;

double ms3(double s) { return std::round(s * 1e6) / 1000; }  // milliseconds, 3 decimals

}  // namespace

int resolve_max_batch(int requested, int threads) {
  return requested > 0 ? requested : std::clamp(2 * threads, 2, 32);
}

namespace {

ServeParams resolved(ServeParams p) {
  if (p.threads <= 0) p.threads = hardware_threads();
  p.max_batch = resolve_max_batch(p.max_batch, p.threads);
  return p;
}

}  // namespace

http::Response json_error(int status, const std::string& message, const std::string& type) {
  json body{{"error", {{"code", status}, {"message", message}, {"type", type}}}};
  // A message may quote what a client sent: bytes that are not UTF-8 become U+FFFD.
  return {status, "application/json", body.dump(-1, ' ', false, json::error_handler_t::replace)};
}

Service::Service(const ServeParams& params)
    : m_params(resolved(params)),
      m_batcher({m_params.max_batch, m_params.max_delay_ms,
                 static_cast<std::size_t>(m_params.queue_capacity)},
                [this](int n) { m_metrics.observe("catdog_batch_size", {}, n); }) {
  m_registry_uri = registry::parse_model_uri(params.model);  // a malformed one: UsageError
  m_api_key = params.api_key;
  if (!params.api_key_file.empty()) {
    std::string text = read_file(params.api_key_file);
    m_api_key = text.substr(0, text.find_first_of("\r\n"));
    if (m_api_key.empty()) throw UsageError("API key file '" + params.api_key_file + "' is empty");
  }
  auto start =
      std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
  m_metrics.counter("catdog_http_requests_total", "HTTP requests by route and status code.");
  m_metrics.histogram("catdog_http_request_duration_seconds", "HTTP request latency by route.",
                      k_latency_buckets);
  m_metrics.histogram("catdog_batch_size", "Images per forward pass of the inference worker.",
                      {1, 2, 4, 8, 16, 32, 64});
  m_metrics.histogram("catdog_stage_duration_seconds",
                      "Time per image in each stage of a prediction: decode, preprocess "
                      "(resize and normalise), queue (waiting for the inference worker), forward "
                      "(its batch's forward pass) and respond (answer to last byte written).",
                      k_stage_buckets);
  m_metrics.counter("catdog_predictions_total", "Predictions by predicted class.");
  m_metrics.counter("catdog_images_refused_total",
                    "Images refused before inference, by reason (decode_cost: over the CPU or "
                    "scan budget of one decode).");
  m_metrics.histogram("catdog_p_dog", "Distribution of P(dog), to watch for drift.",
                      {0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9});
  m_metrics.gauge("catdog_model_info", "The loaded model (value 1), by version and architecture.");
  m_metrics.gauge("catdog_model_p_dog_reference",
                  "Mean P(dog) of the loaded model on its validation split at training time "
                  "(NaN when the model file predates it); the drift alert's baseline.");
  m_metrics.counter("catdog_model_reloads_total", "Model (re)loads by result.");
  m_metrics.gauge_fn("catdog_ready", "1 when the service accepts predictions.",
                     [this] { return m_ready && !m_draining ? 1.0 : 0.0; });
  m_metrics.gauge_fn("catdog_queue_depth", "Images waiting for the inference worker.",
                     [this] { return static_cast<double>(m_batcher.depth()); });
  m_metrics.gauge_fn("process_resident_memory_bytes", "Resident memory size in bytes.",
                     resident_bytes);
  auto cache = [this] {
    auto loaded = current();
    return loaded ? loaded->model->cache_bytes() : Predictor::CacheBytes{};
  };
  m_metrics.gauge_fn("catdog_inference_buffer_bytes",
                     "Memory mapped for large LibTorch buffers (activations), in use or idle.",
                     [cache] { return static_cast<double>(cache().mapped); });
  m_metrics.gauge_fn("catdog_inference_buffer_idle_bytes",
                     "Of catdog_inference_buffer_bytes, the buffers kept idle for reuse.",
                     [cache] { return static_cast<double>(cache().idle); });
  m_metrics.gauge_fn("process_cpu_seconds_total",
                     "Total user and system CPU time spent in seconds.", cpu_seconds, "counter");
  m_metrics.gauge_fn("process_start_time_seconds",
                     "Start time of the process since unix epoch in seconds.",
                     [start] { return start; });
}

Service::~Service() { m_batcher.stop(); }

std::shared_ptr<LoadedModel> Service::current() const {
  std::lock_guard<std::mutex> lock(m_model_mutex);
  return m_loaded;
}

bool Service::load_model() {
  auto t0 = std::chrono::steady_clock::now();
  m_failed_version.clear();
  try {
    auto loaded = std::make_shared<LoadedModel>();
    RuntimeOptions runtime{m_params.device, m_params.threads, k_tensor_cache_bytes};
    std::string path = m_params.model;
    if (m_registry_uri)
      path = fetch_registered(*m_registry_uri, m_params.tracking_uri,
                              model_cache_dir(m_params.model_cache), loaded->registered);
    loaded->model = open_predictor(path, runtime);
    loaded->version = hex64(fnv1a64(read_file(path))).substr(0, 12);
    loaded->loaded_at = utc_now_iso8601();
    std::size_t size = loaded->model->meta().preprocess.size;
    std::vector<float> zeros(3 * size * size, 0.0f);
    loaded->model->predict(zeros.data(), 1);  // warm-up: first-call allocations, kernels
    // A server outlives its file: an operator's cp over it must not reach
    // the weights of a batch size planned later.
    loaded->model->own_weights();
    std::shared_ptr<LoadedModel> old;
    {
      std::lock_guard<std::mutex> lock(m_model_mutex);
      old = m_loaded;
      m_loaded = loaded;
    }
    if (old)
      m_metrics.set("catdog_model_info",
                    {{"version", old->version}, {"architecture", old->model->meta().architecture}},
                    0);
    m_metrics.set(
        "catdog_model_info",
        {{"version", loaded->version}, {"architecture", loaded->model->meta().architecture}}, 1);
    m_metrics.set("catdog_model_p_dog_reference", {}, p_dog_reference(loaded->model->meta()));
    m_metrics.inc("catdog_model_reloads_total", {{"result", "success"}});
    m_ready = true;
    old.reset();
    malloc_trim(0);  // the file's bytes, the unfolded weights and the warm-up's buffers
    spdlog::info("model {}{} loaded (version {}, {}) and warmed up in {:.0f} ms", m_params.model,
                 m_registry_uri ? " (registered version " + loaded->registered.version + ")" : "",
                 loaded->version, loaded->model->meta().architecture, since_ms(t0));
    return true;
  } catch (const std::exception& e) {
    m_metrics.inc("catdog_model_reloads_total", {{"result", "failure"}});
    spdlog::error("cannot load model {}: {}{}", m_params.model, e.what(),
                  current() ? "; keeping the model already loaded" : "");
    return false;
  }
}

void Service::follow_registry() {
  if (!m_registry_uri) return;
  auto loaded = current();
  std::string now;
  try {
    now = resolve_version(*m_registry_uri, m_params.tracking_uri);
    if (loaded && now == loaded->registered.version) return;
    if (now == m_failed_version) return;  // its failure was logged; SIGHUP tries it again
    spdlog::info("{} now resolves to version {}{}; loading it", m_registry_uri->text(), now,
                 loaded ? " (was " + loaded->registered.version + ")" : "");
  } catch (const std::exception& e) {
    spdlog::warn("cannot resolve {}: {}; keeping the model already loaded", m_registry_uri->text(),
                 e.what());
    return;
  }
  if (!load_model()) m_failed_version = now;
}

bool Service::authorized(const http::Request& req) const {
  if (m_api_key.empty()) return true;
  std::string auth = req.header("authorization");
  if (starts_with(to_lower(auth), "bearer ") && constant_time_equal(auth.substr(7), m_api_key))
    return true;
  return constant_time_equal(req.header("x-api-key"), m_api_key);
}

http::Response Service::on_http_error(int status, const std::string& reason,
                                      const http::Request& req) {
  http::Response res;
  bool v2 = req.path == "/v2" || starts_with(req.path, "/v2/");
  if (v2)
    res = v2_error(status >= 500 ? 500 : status,
                   status == 413
                       ? reason + "; the limit is " + std::to_string(m_params.max_body_mb) + " MB"
                   : status >= 500 ? "internal error"
                                   : reason);
  else if (status == 413)
    res = json_error(413, reason + "; the limit is " + std::to_string(m_params.max_body_mb) + " MB",
                     "payload_too_large");
  else if (status == 408)
    res = json_error(408, reason, "request_timeout");
  else if (status == 431)
    res = json_error(431, reason, "header_too_large");
  else if (status >= 500)
    res = json_error(500, "internal error", "server_error");
  else
    res = json_error(status, reason, "bad_request");
  return finalize(req, std::move(res), "other", std::chrono::steady_clock::now(), {});
}

std::string Service::request_id(const http::Request& req) {
  // A client's id is echoed and logged only when it is short and plain.
  std::string id = req.header("x-request-id");
  bool plain = !id.empty() && id.size() <= 64 && std::all_of(id.begin(), id.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.' ||
           c == ':';
  });
  if (plain) return id;
  return hex64(mix_seed(static_cast<std::uint64_t>(::getpid()),
                        static_cast<std::uint64_t>(++m_request_seq)))
      .substr(0, 16);
}

http::Response Service::finalize(const http::Request& req, http::Response res,
                                 const std::string& label, std::chrono::steady_clock::time_point t0,
                                 const Stages& stages) {
  std::string id = request_id(req);
  res.headers.emplace_back("X-Request-Id", id);
  json fields{{"request_id", id},
              {"method", req.method},
              {"route", label},
              {"path", req.path},
              {"status", res.status},
              {"latency_ms", 0.0},
              {"bytes_in", std::max(req.bytes_in, req.body.size())},
              {"remote", req.remote_addr}};
  res.sent = [this, t0, fields = std::move(fields), stages]() mutable {
    auto now = std::chrono::steady_clock::now();
    std::string route_label = fields["route"], code = std::to_string(fields["status"].get<int>());
    m_metrics.inc("catdog_http_requests_total", {{"route", route_label}, {"code", code}});
    m_metrics.observe("catdog_http_request_duration_seconds", {{"route", route_label}},
                      seconds(now - t0));
    fields["latency_ms"] = ms3(seconds(now - t0));
    if (stages.images > 0) {
      double respond = seconds(now - stages.answered);
      m_metrics.observe("catdog_stage_duration_seconds", {{"stage", "respond"}}, respond);
      fields["images"] = stages.images;
      fields["batch"] = stages.batch;
      fields["decode_ms"] = ms3(stages.decode);
      fields["preprocess_ms"] = ms3(stages.preprocess);
      fields["queue_ms"] = ms3(stages.queue);
      fields["forward_ms"] = ms3(stages.forward);
      fields["respond_ms"] = ms3(respond);
    }
    log::event("request", fields);
  };
  return res;
}

std::optional<http::Response> Service::screen(const http::Request& head) {
  auto t0 = std::chrono::steady_clock::now();
  std::string label = "other";
  auto refused = refusal(head, label);
  if (!refused) return std::nullopt;
  return finalize(head, std::move(*refused), label, t0, {});
}

http::Response Service::dispatch(const http::Request& req) {
  auto t0 = std::chrono::steady_clock::now();
  std::string label = "other";
  Stages stages;
  http::Response res;
  try {
    res = route(req, label, stages);
  } catch (const std::exception& e) {
    spdlog::error("request {} {} failed: {}", req.method, req.path, e.what());
    res = starts_with(label, "/v2")
              ? v2_error(500, "internal error; see the server log")
              : json_error(500, "internal error; see the server log", "server_error");
  }
  return finalize(req, std::move(res), label, t0, stages);
}

std::optional<http::Response> Service::refusal(const http::Request& req, std::string& label) const {
  struct Route {
    const char* path;
    const char* method;
    bool needs_key;
  };
  static const Route k_routes[] = {
      {"/health", "GET", false}, {"/ready", "GET", false},   {"/metrics", "GET", false},
      {"/", "GET", false},       {"/docs", "GET", false},    {"/openapi.json", "GET", false},
      {"/model", "GET", true},   {"/predict", "POST", true}, {"/predict/batch", "POST", true},
  };
  if (!valid_utf8(req.path))
    return json_error(400, "the request path is not valid UTF-8", "invalid_request");
  if (req.path == "/v2" || starts_with(req.path, "/v2/")) return v2_refusal(req, label);
  std::string method = req.method == "HEAD" ? "GET" : req.method;
  const Route* found = nullptr;
  for (const auto& r : k_routes)
    if (req.path == r.path) found = &r;
  if (!found) return json_error(404, "no route " + req.path + "; see /docs", "not_found");
  label = found->path;
  if (method != found->method) {
    auto res =
        json_error(405, req.method + " is not allowed on " + req.path + "; use " + found->method,
                   "method_not_allowed");
    res.headers.emplace_back("Allow", found->method);
    return res;
  }
  if (found->needs_key && !authorized(req)) {
    auto res = json_error(
        401, "missing or wrong API key; send 'Authorization: Bearer <key>' or 'X-API-Key'",
        "unauthorized");
    res.headers.emplace_back("WWW-Authenticate", "Bearer");
    return res;
  }
  if (!valid_utf8(req.content_type))
    return json_error(400, "the Content-Type header is not valid UTF-8", "invalid_request");
  std::string type = to_lower(req.content_type);
  bool multipart = starts_with(type, "multipart/form-data");
  if (label == "/predict" && !multipart && !starts_with(type, "image/") &&
      !starts_with(type, "application/octet-stream"))
    return json_error(415,
                      "unsupported content type '" + req.content_type +
                          "'; send multipart/form-data with field 'file', or an image/* body",
                      "unsupported_media_type");
  if (label == "/predict/batch" && !multipart)
    return json_error(415, "send multipart/form-data with one part per image",
                      "unsupported_media_type");
  return std::nullopt;
}

http::Response Service::route(const http::Request& req, std::string& label, Stages& stages) {
  if (auto refused = refusal(req, label)) return std::move(*refused);
  if (starts_with(label, "/v2")) return v2_route(req, label, stages);
  if (label == "/health") return health();
  if (label == "/ready") return ready();
  if (label == "/metrics")
    return {200, "text/plain; version=0.0.4; charset=utf-8", m_metrics.render()};
  if (label == "/") return {200, "text/html; charset=utf-8", index_html()};
  if (label == "/docs") return {200, "text/html; charset=utf-8", docs_html()};
  if (label == "/openapi.json") return {200, "application/json", openapi_json()};
  if (label == "/model") return model_info();
  if (label == "/predict") return predict(req, stages);
  return predict_batch(req, stages);
}

http::Response Service::health() {
  auto loaded = current();
  long served = m_served;
  json body{{"status", "healthy"},
            {"model_loaded", loaded != nullptr},
            {"model_path", m_params.model},
            {"requests_served", served},
            {"average_latency_ms", served ? m_latency_sum_us / 1000.0 / served : 0.0}};
  return {200, "application/json", body.dump(-1, ' ', false, json::error_handler_t::replace)};
}

http::Response Service::ready() {
  if (m_draining) return json_error(503, "shutting down", "unavailable");
  if (!m_ready) return json_error(503, "model not loaded yet", "unavailable");
  return {200, "application/json",
          json{{"status", "ready"}, {"model_version", current()->version}}.dump(
              -1, ' ', false, json::error_handler_t::replace)};
}

http::Response Service::model_info() {
  auto loaded = current();
  if (!loaded) return json_error(503, "model not loaded yet", "unavailable");
  json body = meta_to_json(loaded->model->meta());
  body["model_version"] = loaded->version;
  body["model_path"] = m_params.model;
  body["runtime"] =
      loaded->model->runtime();  // onednn(-int8), or libtorch (--device cuda, older files)
  body["loaded_at"] = loaded->loaded_at;
  if (m_registry_uri)
    body["registry"] = {{"uri", loaded->registered.uri},
                        {"name", loaded->registered.name},
                        {"version", loaded->registered.version},
                        {"alias", loaded->registered.alias},
                        {"source", loaded->registered.source}};
  return {200, "application/json", body.dump(-1, ' ', false, json::error_handler_t::replace)};
}

}  // namespace cd::serve
