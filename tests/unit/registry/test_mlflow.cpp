// The Model Registry client's pure parts: model URIs, query escaping and the
// artifact proxy paths of version sources.
#include "registry/mlflow.h"

#include <catch2/catch.hpp>

using namespace cd;
using namespace cd::registry;

TEST_CASE("model URIs name an alias or a version", "[registry]") {
  auto by_alias = parse_model_uri("models:/catdog@champion");
  REQUIRE(by_alias);
  CHECK(by_alias->name == "catdog");
  CHECK(by_alias->alias == "champion");
  CHECK(by_alias->version.empty());
  CHECK(by_alias->text() == "models:/catdog@champion");

  auto by_version = parse_model_uri("models:/catdog/7");
  REQUIRE(by_version);
  CHECK(by_version->name == "catdog");
  CHECK(by_version->version == "7");
  CHECK(by_version->alias.empty());
  CHECK(by_version->text() == "models:/catdog/7");
}

TEST_CASE("paths are not model URIs, and malformed model URIs say what is expected", "[registry]") {
  CHECK_FALSE(parse_model_uri("models/catdog.cdm"));
  CHECK_FALSE(parse_model_uri("/srv/models:/x"));
  for (const char* bad : {"models:/", "models:/catdog", "models:/@champion", "models:/catdog@",
                          "models:/catdog/", "models:/a@b/c", "models:/a/b/c", "models:/a@b?x"}) {
    INFO(bad);
    try {
      parse_model_uri(bad);
      FAIL("accepted");
    } catch (const UsageError& e) {
      CHECK_THAT(e.what(), Catch::Contains("models:/NAME@ALIAS"));
    }
  }
}

TEST_CASE("query values are percent-encoded", "[registry]") {
  CHECK(query_escape("catdog-v1_2.x~") == "catdog-v1_2.x~");
  CHECK(query_escape("name='a b'&c") == "name%3D%27a%20b%27%26c");
  CHECK(query_escape("\xff/") == "%FF%2F");
}

TEST_CASE("only sources in the artifact proxy can be downloaded", "[registry]") {
  CHECK(artifact_path("mlflow-artifacts:/1/abc/artifacts/model/model.cdm") ==
        "1/abc/artifacts/model/model.cdm");
  CHECK(artifact_path("mlflow-artifacts:1/x") == "1/x");
  try {
    artifact_path("s3://bucket/model.cdm");
    FAIL("accepted");
  } catch (const UsageError& e) {
    CHECK_THAT(e.what(), Catch::Contains("--serve-artifacts"));
  }
}

TEST_CASE("a tracking URI must be http or https", "[registry]") {
  CHECK_THROWS_AS(MlflowClient("file:///tmp/mlruns"), UsageError);
  CHECK_THROWS_AS(MlflowClient("localhost:5000"), UsageError);
  CHECK_NOTHROW(MlflowClient("http://127.0.0.1:5000"));
  CHECK_NOTHROW(MlflowClient("https://mlflow.example.com/prefix"));
}
