// The Open Inference Protocol (V2) beside cd-serve's own routes: health,
// server and model metadata, model readiness and inference. Images sent as
// BYTES go through the same admission, budgets, decoder and batcher as
// /predict; an FP32 tensor the client preprocessed skips the decoder.
#include <algorithm>
#include <cmath>

#include "cd-serve/service.h"
#include "cd-serve/v2.h"
#include "domain/image.h"
#include "domain/labels.h"
#include "util/strings.h"
#include "util/version.h"

namespace cd::serve {

namespace {

using json = nlohmann::ordered_json;

constexpr const char* k_image_input = "image";   // BYTES [N] or [N,1]: encoded images
constexpr const char* k_tensor_input = "input";  // FP32 [N,3,S,S]: as the exported ONNX graph
constexpr const char* k_p_dog_output = "p_dog";  // FP32 [N,1]
constexpr const char* k_label_output = "label";  // BYTES [N,1]

std::vector<std::string> split_path(const std::string& path) {
  std::vector<std::string> parts;
  std::size_t at = 1;
  while (at <= path.size()) {
    std::size_t slash = path.find('/', at);
    if (slash == std::string::npos) slash = path.size();
    parts.push_back(path.substr(at, slash - at));
    at = slash + 1;
  }
  return parts;
}

// The message of one of cd-serve's own error bodies, for the protocol's.
std::string message_of(const http::Response& error) {
  auto body = json::parse(error.body, nullptr, false);
  if (body.is_object() && body.contains("error") && body["error"].contains("message"))
    return body["error"]["message"].get<std::string>();
  return "request failed";
}

http::Response v2_json(const json& body) {
  return {200, "application/json", body.dump(-1, ' ', false, json::error_handler_t::replace)};
}

// Health and readiness: the status code answers (200 or 400, as the protocol
// says); the body is KServe's own server's, which its SDK reads.
http::Response v2_flag(const char* key, bool yes) {
  return {yes ? 200 : 400, "application/json", json{{key, yes}}.dump()};
}

}  // namespace

http::Response v2_error(int status, const std::string& message) {
  return {status, "application/json", v2::error_body(message)};
}

std::optional<http::Response> Service::v2_refusal(const http::Request& req,
                                                  std::string& label) const {
  // /v2, /v2/health/{live,ready}, /v2/models/NAME[/versions/VERSION][/ready|/infer]
  std::vector<std::string> parts = split_path(req.path);  // parts[0] == "v2"
  const char* method = "GET";
  bool needs_key = false;
  std::string model, version;
  if (parts.size() == 1) {
    label = "/v2";
  } else if (parts.size() == 3 && parts[1] == "health" &&
             (parts[2] == "live" || parts[2] == "ready")) {
    label = "/v2/health/" + parts[2];
  } else if (parts.size() >= 3 && parts[1] == "models") {
    model = parts[2];
    std::size_t next = 3;
    if (parts.size() >= 5 && parts[3] == "versions") {
      version = parts[4];
      next = 5;
    }
    std::string tail = next < parts.size() ? parts[next] : "";
    if (next + 1 < parts.size() || (next < parts.size() && tail != "ready" && tail != "infer") ||
        model.empty() || (next == 5 && version.empty()))
      return v2_error(404, "no route " + req.path + "; see /docs");
    label = "/v2/models/{name}" + (tail.empty() ? "" : "/" + tail);
    if (tail == "infer") method = "POST";
    needs_key = tail != "ready";
  } else {
    return v2_error(404, "no route " + req.path + "; see /docs");
  }
  std::string asked = req.method == "HEAD" ? "GET" : req.method;
  if (asked != method) {
    auto res = v2_error(405, req.method + " is not allowed on " + req.path + "; use " + method);
    res.headers.emplace_back("Allow", method);
    return res;
  }
  if (needs_key && !authorized(req)) {
    auto res = v2_error(
        401, "missing or wrong API key; send 'Authorization: Bearer <key>' or 'X-API-Key'");
    res.headers.emplace_back("WWW-Authenticate", "Bearer");
    return res;
  }
  if (!model.empty() && model != m_params.model_name)
    return v2_error(
        404, "unknown model '" + model + "'; this server serves '" + m_params.model_name + "'");
  if (!version.empty()) {
    auto loaded = current();
    if (loaded && version != loaded->version)
      return v2_error(404, "model '" + model + "' has no version '" + version +
                               "'; the loaded version is '" + loaded->version + "'");
  }
  return std::nullopt;
}

http::Response Service::v2_route(const http::Request& req, const std::string& label,
                                 Stages& stages) {
  bool ready = m_ready && !m_draining && current();
  if (label == "/v2/health/live") return v2_flag("live", true);
  if (label == "/v2/health/ready" || label == "/v2/models/{name}/ready")
    return v2_flag("ready", ready);
  if (label == "/v2")
    return v2_json({{"name", "cd-serve"},
                    {"version", catdog_version()},
                    {"extensions", {"binary_tensor_data"}}});
  if (label == "/v2/models/{name}") return v2_model_metadata();
  return v2_infer(req, stages);
}

http::Response Service::v2_model_metadata() {
  auto loaded = current();
  if (!loaded) return v2_error(503, "model not loaded yet");
  int side = loaded->model->meta().preprocess.size;
  return v2_json(
      {{"name", m_params.model_name},
       {"versions", {loaded->version}},
       {"platform", "catdog_" + loaded->model->runtime()},
       {"inputs",
        {{{"name", k_image_input}, {"datatype", "BYTES"}, {"shape", {-1}}},
         {{"name", k_tensor_input}, {"datatype", "FP32"}, {"shape", {-1, 3, side, side}}}}},
       {"outputs",
        {{{"name", k_p_dog_output}, {"datatype", "FP32"}, {"shape", {-1, 1}}},
         {{"name", k_label_output}, {"datatype", "BYTES"}, {"shape", {-1, 1}}}}}});
}

http::Response Service::v2_infer(const http::Request& req, Stages& stages) {
  auto loaded = current();
  if (!m_ready || !loaded || m_draining)
    return v2_error(503, m_draining ? "shutting down" : "model not loaded yet");
  v2::InferRequest request;
  try {
    std::optional<std::size_t> header_length;
    std::string declared = req.header("inference-header-content-length");
    if (!declared.empty()) header_length = v2::parse_header_length(declared);
    request = v2::parse_infer(req.body, header_length,
                              {static_cast<std::size_t>(m_params.max_batch_files)});
  } catch (const v2::ProtocolError& e) {
    return v2_error(400, e.what());
  }

  const int side = loaded->model->meta().preprocess.size;
  const std::string expected = "send one input: '" + std::string(k_image_input) +
                               "' (BYTES, encoded images) or '" + k_tensor_input + "' (FP32 [N,3," +
                               std::to_string(side) + "," + std::to_string(side) + "])";
  if (request.inputs.size() != 1) return v2_error(400, expected);
  v2::InputTensor& in = request.inputs.front();
  bool images = in.name == k_image_input;
  if (!images && in.name != k_tensor_input)
    return v2_error(400, "unknown input '" + in.name + "'; " + expected);
  v2::DataType wanted = images ? v2::DataType::k_bytes : v2::DataType::k_fp32;
  if (in.datatype != wanted)
    return v2_error(400, "input '" + in.name + "' must be " + v2::to_string(wanted) + ", not " +
                             v2::to_string(in.datatype));
  std::int64_t n = in.shape.empty() ? 0 : in.shape[0];
  bool shape_ok = images ? (in.shape.size() == 1 || (in.shape.size() == 2 && in.shape[1] == 1))
                         : (in.shape.size() == 4 && in.shape[1] == 3 && in.shape[2] == side &&
                            in.shape[3] == side);
  if (!shape_ok || n < 1)
    return v2_error(
        400, "input '" + in.name + "' must have shape " +
                 (images ? std::string("[N] or [N,1]")
                         : "[N,3," + std::to_string(side) + "," + std::to_string(side) + "]") +
                 " with N at least 1");
  if (n > m_params.max_batch_files)
    return v2_error(413, "at most " + std::to_string(m_params.max_batch_files) +
                             " images per request (--max-batch-files)");
  bool want_p = request.outputs.empty(), want_label = request.outputs.empty();
  bool p_binary = request.binary_output, label_binary = request.binary_output;
  for (const auto& o : request.outputs) {
    if (o.name == k_p_dog_output) {
      want_p = true;
      p_binary = p_binary || o.binary;
    } else if (o.name == k_label_output) {
      want_label = true;
      label_binary = label_binary || o.binary;
    } else {
      return v2_error(400, "unknown output '" + o.name + "'; the model has '" + k_p_dog_output +
                               "' (FP32) and '" + k_label_output + "' (BYTES)");
    }
  }

  auto count = static_cast<std::size_t>(n);
  const std::size_t per_image = 3 * static_cast<std::size_t>(side) * side;
  if (images) {
    std::uint64_t pixels = 0;
    for (const auto& bytes : in.bytes)
      if (auto header = read_image_header(bytes))
        pixels += std::uint64_t{header->width} * header->height;
    auto max_pixels = static_cast<std::uint64_t>(m_params.max_batch_megapixels * 1e6);
    if (pixels > max_pixels)
      return v2_error(413, "the images of this request declare " + std::to_string(pixels) +
                               " pixels in all, over the budget of " + std::to_string(max_pixels) +
                               " (--max-batch-megapixels)");
  } else if (!std::all_of(in.floats.begin(), in.floats.end(),
                          [](float v) { return std::isfinite(v); })) {
    return v2_error(400, "input '" + in.name + "' holds NaN or infinite values");
  }

  // Queue every image, then collect in order; the first refusal answers the
  // request (after the queued ones are collected, so every count stays true).
  std::vector<Pending> pending(count);
  http::Response refused;
  std::size_t refused_at = count;
  for (std::size_t i = 0; i < count && refused_at == count; ++i) {
    http::Response error;
    bool queued = images
                      ? submit(in.bytes[i], pending[i], stages, error)
                      : enqueue(pending[i], error, [&](const PreprocessSpec& spec, float* input) {
                          if (spec.size != side) {  // a reload changed the model's input
                            error = json_error(400,
                                               "the model's input is now " +
                                                   std::to_string(spec.size) + " pixels a side",
                                               "invalid_request");
                            return false;
                          }
                          std::copy_n(in.floats.data() + i * per_image, per_image, input);
                          return true;
                        });
    if (!queued) {
      refused = std::move(error);
      refused_at = i;
    }
  }
  std::vector<v2::OutputTensor> outputs;
  v2::OutputTensor p{k_p_dog_output, v2::DataType::k_fp32, {n, 1}, {}, {}, p_binary};
  v2::OutputTensor label{k_label_output, v2::DataType::k_bytes, {n, 1}, {}, {}, label_binary};
  std::string version = loaded->version;
  for (auto& one : pending) {
    if (!one.result.valid()) continue;
    json answer = finish(one, stages);
    p.floats.push_back(static_cast<float>(answer["p_dog"].get<double>()));
    label.bytes.push_back(answer["class_label"].get<std::string>());
    version = one.model->version;
  }
  if (refused_at < count) {
    auto res =
        v2_error(refused.status, (images ? "image " : "tensor ") + std::to_string(refused_at) +
                                     ": " + message_of(refused));
    res.headers = refused.headers;
    return res;
  }
  if (want_p) outputs.push_back(std::move(p));
  if (want_label) outputs.push_back(std::move(label));
  v2::EncodedResponse encoded =
      v2::encode_infer_response(m_params.model_name, version, request.id, outputs);
  http::Response res{200, encoded.header_length ? "application/octet-stream" : "application/json",
                     std::move(encoded.body)};
  if (encoded.header_length)
    res.headers.emplace_back("Inference-Header-Content-Length",
                             std::to_string(*encoded.header_length));
  return res;
}

}  // namespace cd::serve
