#include <catch2/catch.hpp>

#include <algorithm>

#include <nlohmann/json.hpp>

#include "cd-serve/service.h"
#include "util/parallel.h"

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

// What the HTTP layer does: dispatch, write, then run the response's `sent`
// (which records the log line and the metrics).
Response call(cd::serve::Service& service, const Request& req) {
  Response res = service.dispatch(req);
  if (res.sent) res.sent();
  return res;
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
  Response health = call(service, request("GET", "/health"));
  CHECK(health.status == 200);
  auto body = nlohmann::json::parse(health.body);
  CHECK(body["model_loaded"] == false);
  CHECK(body["model_path"] == "/nonexistent/model.cdm");
  CHECK(call(service, request("HEAD", "/health")).status == 200);
  Response ready = call(service, request("GET", "/ready"));
  CHECK(ready.status == 503);
  CHECK(error_type(ready) == "unavailable");
  Response missing = call(service, request("GET", "/nope"));
  CHECK(missing.status == 404);
  CHECK(error_type(missing) == "not_found");
  CHECK_FALSE(header(missing, "X-Request-Id").empty());
  CHECK_FALSE(service.load_model());  // a missing file keeps the service up, not ready
  CHECK(call(service, request("GET", "/ready")).status == 503);
}

TEST_CASE("routing: a wrong method is 405 with Allow", "[service]") {
  cd::ServeParams params;
  cd::serve::Service service(params);
  Response res = call(service, request("GET", "/predict"));
  CHECK(res.status == 405);
  CHECK(header(res, "Allow") == "POST");
  CHECK(error_type(res) == "method_not_allowed");
  res = call(service, request("DELETE", "/health"));
  CHECK(res.status == 405);
  CHECK(header(res, "Allow") == "GET");
}

TEST_CASE("auth: a configured key guards predictions and /model, not probes or metrics",
          "[service]") {
  cd::ServeParams params;
  params.api_key = "s3cret";
  cd::serve::Service service(params);
  Response res = call(service, request("GET", "/model"));
  CHECK(res.status == 401);
  CHECK(header(res, "WWW-Authenticate") == "Bearer");
  CHECK(call(service, request("GET", "/model", {{"x-api-key", "wrong"}})).status == 401);
  CHECK(call(service, request("POST", "/predict", {{"authorization", "Bearer s3cre"}})).status ==
        401);
  // The right key gets through to the route, which has no model yet.
  CHECK(call(service, request("GET", "/model", {{"x-api-key", "s3cret"}})).status == 503);
  CHECK(call(service, request("GET", "/model", {{"authorization", "bearer s3cret"}})).status ==
        503);
  for (const char* open : {"/health", "/ready", "/metrics", "/", "/docs", "/openapi.json"})
    CHECK(call(service, request("GET", open)).status != 401);
}

TEST_CASE("predict: content types are checked before the model is needed", "[service]") {
  cd::ServeParams params;
  cd::serve::Service service(params);
  Request text = request("POST", "/predict");
  text.content_type = "text/plain";
  text.body = "hello";
  Response res = call(service, text);
  CHECK(res.status == 415);
  CHECK(error_type(res) == "unsupported_media_type");
  Request image = request("POST", "/predict");
  image.content_type = "image/jpeg";
  image.body = "\xFF\xD8\xFF";
  CHECK(call(service, image).status == 503);  // no model loaded
  Request batch = request("POST", "/predict/batch");
  batch.content_type = "application/json";
  CHECK(call(service, batch).status == 415);
}

TEST_CASE("metrics count requests by route and code", "[service]") {
  cd::ServeParams params;
  cd::serve::Service service(params);
  call(service, request("GET", "/health"));
  call(service, request("GET", "/health"));
  call(service, request("GET", "/ready"));
  call(service, request("GET", "/nope"));
  Response metrics = call(service, request("GET", "/metrics"));
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

TEST_CASE("metrics and the log line wait for the response to be sent", "[service]") {
  cd::ServeParams params;
  cd::serve::Service service(params);
  Response unsent = service.dispatch(request("GET", "/health"));
  REQUIRE(unsent.sent);
  std::string before = call(service, request("GET", "/metrics")).body;
  CHECK(before.find("catdog_http_requests_total{route=\"/health\"") == std::string::npos);
  unsent.sent();
  std::string after = call(service, request("GET", "/metrics")).body;
  CHECK(after.find("catdog_http_requests_total{route=\"/health\",code=\"200\"} 1") !=
        std::string::npos);
}

TEST_CASE("the dynamic batch limit follows the compute threads unless given", "[service]") {
  CHECK(cd::serve::resolve_max_batch(7, 2) == 7);
  CHECK(cd::serve::resolve_max_batch(0, 3) == 6);
  CHECK(cd::serve::resolve_max_batch(0, 64) == 32);
  CHECK(cd::serve::resolve_max_batch(0, 1) == 2);
  int automatic = cd::serve::resolve_max_batch(0, cd::hardware_threads());
  cd::ServeParams params;
  cd::serve::Service service(params);
  CHECK(service.params().max_batch == automatic);
}
