#include "catch_torch.h"

#include <nlohmann/json.hpp>

#include "cd-serve/service.h"

using cd::http::Request;
using cd::http::Response;

namespace {

Request request(const std::string& method, const std::string& path,
                std::multimap<std::string, std::string> headers = {}) {
  Request r;
  r.method = method;
  r.path = path;
  r.headers = std::move(headers);
  return r;
}

std::string header(const Response& res, const std::string& name) {
  for (const auto& [k, v] : res.headers)
    if (k == name) return v;
  return "";
}

std::string error_type(const Response& res) {
  return nlohmann::json::parse(res.body).at("error").at("type").get<std::string>();
}

}  // namespace

TEST_CASE("routing: liveness without a model, readiness 503, unknown routes 404", "[service]") {
  cd::ServeParams params;
  params.model = "/nonexistent/model.cdm";
  cd::serve::Service service(params);
  Response health = service.dispatch(request("GET", "/health"));
  CHECK(health.status == 200);
  auto body = nlohmann::json::parse(health.body);
  CHECK(body["model_loaded"] == false);
  CHECK(body["model_path"] == "/nonexistent/model.cdm");
  CHECK(service.dispatch(request("HEAD", "/health")).status == 200);
  Response ready = service.dispatch(request("GET", "/ready"));
  CHECK(ready.status == 503);
  CHECK(error_type(ready) == "unavailable");
  Response missing = service.dispatch(request("GET", "/nope"));
  CHECK(missing.status == 404);
  CHECK(error_type(missing) == "not_found");
  CHECK_FALSE(header(missing, "X-Request-Id").empty());
  CHECK_FALSE(service.load_model());  // a missing file keeps the service up, not ready
  CHECK(service.dispatch(request("GET", "/ready")).status == 503);
}

TEST_CASE("routing: a wrong method is 405 with Allow", "[service]") {
  cd::ServeParams params;
  cd::serve::Service service(params);
  Response res = service.dispatch(request("GET", "/predict"));
  CHECK(res.status == 405);
  CHECK(header(res, "Allow") == "POST");
  CHECK(error_type(res) == "method_not_allowed");
  res = service.dispatch(request("DELETE", "/health"));
  CHECK(res.status == 405);
  CHECK(header(res, "Allow") == "GET");
}

TEST_CASE("auth: a configured key guards predictions and /model, not probes or metrics",
          "[service]") {
  cd::ServeParams params;
  params.api_key = "s3cret";
  cd::serve::Service service(params);
  Response res = service.dispatch(request("GET", "/model"));
  CHECK(res.status == 401);
  CHECK(header(res, "WWW-Authenticate") == "Bearer");
  CHECK(service.dispatch(request("GET", "/model", {{"x-api-key", "wrong"}})).status == 401);
  CHECK(service.dispatch(request("POST", "/predict", {{"authorization", "Bearer s3cre"}})).status ==
        401);
  // The right key gets through to the route, which has no model yet.
  CHECK(service.dispatch(request("GET", "/model", {{"x-api-key", "s3cret"}})).status == 503);
  CHECK(service.dispatch(request("GET", "/model", {{"authorization", "bearer s3cret"}})).status ==
        503);
  for (const char* open : {"/health", "/ready", "/metrics", "/", "/docs", "/openapi.json"})
    CHECK(service.dispatch(request("GET", open)).status != 401);
}

TEST_CASE("predict: content types are checked before the model is needed", "[service]") {
  cd::ServeParams params;
  cd::serve::Service service(params);
  Request text = request("POST", "/predict");
  text.content_type = "text/plain";
  text.body = "hello";
  Response res = service.dispatch(text);
  CHECK(res.status == 415);
  CHECK(error_type(res) == "unsupported_media_type");
  Request image = request("POST", "/predict");
  image.content_type = "image/jpeg";
  image.body = "\xFF\xD8\xFF";
  CHECK(service.dispatch(image).status == 503);  // no model loaded
  Request batch = request("POST", "/predict/batch");
  batch.content_type = "application/json";
  CHECK(service.dispatch(batch).status == 415);
}

TEST_CASE("metrics count requests by route and code", "[service]") {
  cd::ServeParams params;
  cd::serve::Service service(params);
  service.dispatch(request("GET", "/health"));
  service.dispatch(request("GET", "/health"));
  service.dispatch(request("GET", "/ready"));
  service.dispatch(request("GET", "/nope"));
  Response metrics = service.dispatch(request("GET", "/metrics"));
  CHECK(metrics.status == 200);
  CHECK(metrics.content_type.find("version=0.0.4") != std::string::npos);
  CHECK(metrics.body.find("catdog_http_requests_total{route=\"/health\",code=\"200\"} 2") !=
        std::string::npos);
  CHECK(metrics.body.find("catdog_http_requests_total{route=\"/ready\",code=\"503\"} 1") !=
        std::string::npos);
  CHECK(metrics.body.find("catdog_http_requests_total{route=\"other\",code=\"404\"} 1") !=
        std::string::npos);
  CHECK(metrics.body.find("catdog_ready 0") != std::string::npos);
}
