// POST /predict and /predict/batch: each image is admitted, decoded and
// queued for the batcher, then its answer is collected and counted.
#include <algorithm>
#include <chrono>
#include <cmath>

#include "cd-serve/service.h"
#include "domain/image.h"
#include "domain/labels.h"
#include "domain/model_file.h"
#include "util/errors.h"
#include "util/strings.h"

namespace cd::serve {

namespace {

using json = nlohmann::ordered_json;
using Seconds = std::chrono::duration<double>;
using Millis = std::chrono::duration<double, std::milli>;

}  // namespace

bool Service::enqueue(Pending& pending, http::Response& error, const Fill& fill) {
  pending.start = std::chrono::steady_clock::now();
  pending.model = current();
  if (!m_ready || !pending.model || m_draining) {
    error = json_error(503, m_draining ? "shutting down" : "model not loaded yet", "unavailable");
    return false;
  }
  auto overloaded = [&error] {
    error =
        json_error(503, "server is overloaded (inference queue full); retry shortly", "overloaded");
    error.headers.emplace_back("Retry-After", "1");
    return false;
  };
  // Admitted before decoding (so a refusal costs no decode), and counted as
  // on its way while it decodes, so the worker can wait for it.
  if (!m_batcher.admit()) return overloaded();
  pending.admitted = std::chrono::steady_clock::now();
  struct Admission {
    Batcher& batcher;
    bool pending = true;
    ~Admission() {
      if (pending) batcher.withdraw();
    }
  } admission{m_batcher};
  const PreprocessSpec& spec = pending.model->model->meta().preprocess;
  std::vector<float> image(3 * static_cast<std::size_t>(spec.size) * spec.size);
  if (!fill(spec, image.data())) return false;
  admission.pending = false;
  pending.result = m_batcher.submit(pending.model->model, std::move(image), true);
  if (!pending.result.valid()) return overloaded();
  return true;
}

bool Service::submit(const std::string& bytes, Pending& pending, Stages& stages,
                     http::Response& error) {
  return enqueue(pending, error, [&](const PreprocessSpec& spec, float* image) {
    PreprocessTiming timing;
    try {
      preprocess_into(bytes, spec, image, &timing);
    } catch (const CostError& e) {
      pending.costly = true;
      m_metrics.inc("catdog_images_refused_total", {{"reason", "decode_cost"}});
      error = json_error(413, std::string("image too costly to decode: ") + e.what(),
                         "payload_too_large");
      return false;
    } catch (const BudgetError& e) {
      error = json_error(413, std::string("image over budget: ") + e.what(), "payload_too_large");
      return false;
    } catch (const DataError& e) {
      error = json_error(400, std::string("not an image: ") + e.what(), "invalid_image");
      return false;
    }
    m_metrics.observe("catdog_stage_duration_seconds", {{"stage", "decode"}}, timing.decode_s);
    m_metrics.observe("catdog_stage_duration_seconds", {{"stage", "preprocess"}},
                      timing.preprocess_s);
    stages.decode += timing.decode_s;
    stages.preprocess += timing.preprocess_s;
    return true;
  });
}

json Service::finish(Pending& pending, Stages& stages) {
  Inference answer = pending.result.get();
  double p = answer.p_dog;
  // Queue: waiting for admission, then for the worker.
  double queue = Seconds(pending.admitted - pending.start).count() + answer.queue_s;
  m_metrics.observe("catdog_stage_duration_seconds", {{"stage", "queue"}}, queue);
  m_metrics.observe("catdog_stage_duration_seconds", {{"stage", "forward"}}, answer.forward_s);
  stages.queue = std::max(stages.queue, queue);
  stages.forward = std::max(stages.forward, answer.forward_s);
  stages.batch = std::max(stages.batch, answer.batch);
  ++stages.images;
  stages.answered = std::max(stages.answered, answer.answered);
  Decision d = decide(p, pending.model->model->meta().threshold);
  double ms = Millis(std::chrono::steady_clock::now() - pending.start).count();
  m_metrics.inc("catdog_predictions_total", {{"class", d.name()}});
  m_metrics.observe("catdog_p_dog", {}, p);
  ++m_served;
  m_latency_sum_us += static_cast<long long>(ms * 1000);
  return {{"class_label", d.name()},
          {"probability", d.confidence},
          {"p_dog", p},
          {"prediction_time_ms", std::round(ms * 1000) / 1000},
          {"timestamp", utc_now_iso8601()},
          {"model_version", pending.model->version}};
}

http::Response Service::predict(const http::Request& req, Stages& stages) {
  std::string bytes;
  std::string type = to_lower(req.content_type);
  if (req.multipart) {
    const http::Part* part = nullptr;
    for (const auto& p : req.parts) {
      if (p.name != "file") continue;
      if (part)
        return json_error(400, "more than one 'file' part; send one, or use /predict/batch",
                          "invalid_request");
      part = &p;
    }
    if (!part) return json_error(400, "multipart field 'file' is missing", "invalid_request");
    std::string part_type = to_lower(part->content_type);
    if (!part_type.empty() && !starts_with(part_type, "image/") &&
        part_type != "application/octet-stream")
      return json_error(400, "not an image: the upload is " + part->content_type, "invalid_image");
    bytes = part->data;
  } else if (starts_with(type, "image/") || starts_with(type, "application/octet-stream")) {
    bytes = req.body;
  } else {
    return json_error(415, "unsupported content type", "unsupported_media_type");  // screened
  }
  Pending pending;
  http::Response error;
  if (!submit(bytes, pending, stages, error)) return error;
  return {200, "application/json",
          finish(pending, stages).dump(-1, ' ', false, json::error_handler_t::replace)};
}

http::Response Service::predict_batch(const http::Request& req, Stages& stages) {
  if (!req.multipart)
    return json_error(415, "send multipart/form-data with one part per image",
                      "unsupported_media_type");
  if (req.parts.empty()) return json_error(400, "no files in the request", "invalid_request");
  for (std::size_t i = 0; i < req.parts.size(); ++i)
    if (!valid_utf8(req.parts[i].filename))
      return json_error(400,
                        "the filename of part " + std::to_string(i + 1) + " is not valid UTF-8",
                        "invalid_request");
  if (static_cast<int>(req.parts.size()) > m_params.max_batch_files)
    return json_error(413,
                      "at most " + std::to_string(m_params.max_batch_files) + " files per batch",
                      "payload_too_large");
  // Every part may be within the per-image budget while the request is not:
  // the pixels its headers declare are summed before anything is decoded.
  std::uint64_t pixels = 0;
  for (const auto& part : req.parts)
    if (auto header = read_image_header(part.data))
      pixels += std::uint64_t{header->width} * header->height;
  auto max_pixels = static_cast<std::uint64_t>(m_params.max_batch_megapixels * 1e6);
  if (pixels > max_pixels)
    return json_error(413,
                      "the images of this request declare " + std::to_string(pixels) +
                          " pixels in all, over the budget of " + std::to_string(max_pixels) +
                          " per request (--max-batch-megapixels raises it; or send fewer per "
                          "request)",
                      "payload_too_large");
  // Queue every image first so the worker can batch them, then collect in order.
  // After one part proved too costly to decode, the rest are not tried: one
  // request gets one image's decoding budget of waste, not one per part.
  std::vector<Pending> pending(req.parts.size());
  std::vector<json> items(req.parts.size());
  bool costly = false;
  for (std::size_t i = 0; i < req.parts.size(); ++i) {
    const auto& part = req.parts[i];
    http::Response error;
    std::string part_type = to_lower(part.content_type);
    if (!part_type.empty() && !starts_with(part_type, "image/") &&
        part_type != "application/octet-stream")
      error = json_error(400, "not an image: the upload is " + part.content_type, "invalid_image");
    else if (costly)
      error =
          json_error(413, "not decoded: an earlier image of this request was too costly to decode",
                     "payload_too_large");
    else if (submit(part.data, pending[i], stages, error))
      continue;
    costly = costly || pending[i].costly;
    if (error.status == 503 && !m_ready) return error;
    items[i] = json::parse(error.body);
  }
  json predictions = json::array();
  for (std::size_t i = 0; i < req.parts.size(); ++i) {
    if (pending[i].result.valid()) items[i] = finish(pending[i], stages);
    items[i]["filename"] = req.parts[i].filename;
    predictions.push_back(items[i]);
  }
  return {200, "application/json",
          json{{"predictions", predictions}}.dump(-1, ' ', false, json::error_handler_t::replace)};
}

}  // namespace cd::serve
