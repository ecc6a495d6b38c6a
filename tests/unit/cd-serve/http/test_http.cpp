#include <httplib.h>
#include <catch2/catch.hpp>

#include "cd-serve/http/http.h"
#include "loopback.h"
#include "util/errors.h"

using cd::http::Request;
using cd::http::Response;
using cd::test::LoopbackServer;

TEST_CASE("http: handlers see plain requests with lower-case header names", "[http]") {
  LoopbackServer server;
  auto client = server.client();
  auto res = client.Post("/predict", {{"X-Request-Id", "abc"}}, "raw bytes", "image/jpeg");
  REQUIRE(res);
  CHECK(res->status == 201);
  CHECK(res->body == "seen POST /predict");
  CHECK(res->get_header_value("X-Test") == "yes");
  Request req = server.last();
  CHECK(req.header("x-request-id") == "abc");
  CHECK(req.header("X-Request-Id").empty());  // lookups use lower-case names
  CHECK(req.content_type == "image/jpeg");
  CHECK(req.body == "raw bytes");
  CHECK_FALSE(req.multipart);
  CHECK(req.remote_addr == "127.0.0.1");
}

TEST_CASE("http: multipart uploads arrive as parts", "[http]") {
  LoopbackServer server;
  auto client = server.client();
  httplib::MultipartFormDataItems items = {{"file", "JPEGDATA", "cat.jpg", "image/jpeg"}};
  auto res = client.Post("/predict", items);
  REQUIRE(res);
  Request req = server.last();
  CHECK(req.multipart);
  REQUIRE(req.parts.size() == 1);
  CHECK(req.parts[0].name == "file");
  CHECK(req.parts[0].filename == "cat.jpg");
  CHECK(req.parts[0].content_type == "image/jpeg");
  CHECK(req.parts[0].data == "JPEGDATA");
}

TEST_CASE("http: a body over the limit goes to the error handler as 413", "[http]") {
  LoopbackServer server(/*max_body=*/1000);
  auto client = server.client();
  auto res = client.Post("/predict", std::string(5000, 'x'), "image/jpeg");
  REQUIRE(res);
  CHECK(res->status == 413);
  CHECK(res->body == "{\"handled\":413}");
  CHECK(res->get_header_value("Content-Type") == "application/json");
}

TEST_CASE("http: a port another server holds is an IoError, not a shared port", "[http]") {
  cd::http::Server first({"127.0.0.1", 0, 1, 1000});
  int port = first.bind();
  cd::http::Server second({"127.0.0.1", port, 1, 1000});
  CHECK_THROWS_WITH(second.bind(),
                    Catch::StartsWith("cannot listen on 127.0.0.1:" + std::to_string(port)));
}

TEST_CASE("http: an address it cannot listen on is an IoError naming it", "[http]") {
  // 203.0.113.1 is TEST-NET-3: never an address of this machine.
  cd::http::Server server({"203.0.113.1", 8000, 1, 1000});
  CHECK_THROWS_WITH(server.bind(), Catch::StartsWith("cannot listen on 203.0.113.1:8000"));
}
