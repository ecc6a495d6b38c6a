#include <catch2/catch.hpp>

#include "domain/model_file.h"
#include "fake_predictor.h"
#include "helpers.h"
#include "runtime/graph.h"
#include "runtime/predictor.h"
#include "util/atomic_file.h"
#include "util/errors.h"

using cd::test::source_path;

namespace {

// A model file with a LibTorch archive the runtime never reads (`payload`)
// and a one-convolution graph it does.
std::string graph_model_file(const std::string& payload) {
  cd::InferenceGraph g;
  g.weights["w"] = {{1, 3, 1, 1}, {0.5f, -0.25f, 0.125f}};
  g.nodes.push_back({"Conv", {"input", "w"}, "c", {{"kernel_shape", {1, 1}}}, {}});
  g.nodes.push_back({"Sigmoid", {"c"}, "p_dog", {}, {}});
  g.output = "p_dog";
  return cd::pack_file(
      {cd::FileKind::k_model, cd::meta_to_json(cd::ModelMeta{}), payload, cd::write_graph(g)});
}

std::string open_message(const cd::test::TempDir& dir, const std::string& bytes) {
  cd::write_file_atomic(dir.file("m.cdm"), bytes);
  try {
    cd::open_predictor(dir.file("m.cdm"), {"cpu", 1});
  } catch (const cd::ModelError& e) {
    return e.what();
  }
  return "opened";
}

// A model file the runtime runs on photos: one convolution, pooled to P(dog).
std::string photo_model_file() {
  cd::InferenceGraph g;
  g.weights["w"] = {{1, 3, 1, 1}, {0.5f, -0.25f, 0.125f}};
  g.nodes.push_back({"Conv", {"input", "w"}, "c", {{"kernel_shape", {1, 1}}}, {}});
  g.nodes.push_back({"GlobalAveragePool", {"c"}, "g", {}, {}});
  g.nodes.push_back({"Flatten", {"g"}, "f", {}, {}});
  g.nodes.push_back({"Sigmoid", {"f"}, "p_dog", {}, {}});
  g.output = "p_dog";
  return cd::pack_file(
      {cd::FileKind::k_model, cd::meta_to_json(cd::ModelMeta{}), "payload", cd::write_graph(g)});
}

}  // namespace

TEST_CASE("the runtime refuses a damaged model file for its checksum, parsed or not",
          "[predictor]") {
  cd::test::TempDir dir;
  const std::string bytes = graph_model_file(std::string(4096, 'p'));
  REQUIRE(open_message(dir, bytes) == "opened");
  const std::size_t payload_at = bytes.find(std::string(4096, 'p'));
  REQUIRE(payload_at != std::string::npos);
  const std::size_t graph_at = payload_at + 4096 + 8;  // after the graph's length
  // A byte of the LibTorch archive, which the runtime never parses.
  std::string payload = bytes;
  payload[payload_at + 100] ^= 1;
  CHECK_THAT(open_message(dir, payload), Catch::Contains("checksum mismatch"));
  // The graph's first bytes zeroed: its parse would fail too; the mismatch,
  // the cause, is what is reported.
  std::string graph = bytes;
  for (std::size_t i = graph_at; i < graph_at + 16; ++i) graph[i] = 0;
  CHECK_THAT(open_message(dir, graph), Catch::Contains("checksum mismatch"));
  // A weight's value changed: the graph still parses, the checksum does not match.
  std::string weight = bytes;
  const float half = 0.5f;
  std::size_t at =
      weight.find(std::string(reinterpret_cast<const char*>(&half), sizeof half), graph_at);
  REQUIRE(at != std::string::npos);
  weight[at + 3] ^= 0x40;
  CHECK_THAT(open_message(dir, weight), Catch::Contains("checksum mismatch"));
}

TEST_CASE("a run of more than one batch owns the model's weights after its first batch",
          "[predictor]") {
  std::vector<cd::Prediction> items;
  for (const char* name : {"cat.1.jpg", "dog.1.jpg", "dog.2.jpg"})
    items.push_back({source_path(std::string("tests/fixtures/photos/") + name), ""});

  // One batch (cd-predict photo.jpg): the file's weights are never copied.
  cd::test::FakePredictor one_batch;
  std::vector<cd::Prediction> single(items.begin(), items.begin() + 1);
  cd::predict_all(one_batch, single, /*batch_size=*/32, /*threads=*/1,
                  [](const cd::Prediction&) {});
  CHECK(one_batch.owned_after().empty());

  // Three images in batches of two: copied once, after the first batch,
  // before the smaller last batch is planned.
  cd::test::FakePredictor two_batches;
  int answered = 0;
  cd::predict_all(two_batches, items, /*batch_size=*/2, /*threads=*/1,
                  [&](const cd::Prediction&) { ++answered; });
  CHECK(answered == 3);
  CHECK(two_batches.batch_sizes() == std::vector<int>{2, 1});
  CHECK(two_batches.owned_after() == std::vector<int>{1});
}

TEST_CASE("calibrate_int8 reads images spread over its list, and the file it writes runs INT8",
          "[predictor][int8]") {
  cd::test::TempDir dir;
  cd::write_file_atomic(dir.file("m.cdm"), photo_model_file());
  const std::string cat = source_path("tests/fixtures/photos/cat.1.jpg");
  const std::string dog = source_path("tests/fixtures/photos/dog.1.jpg");
  const std::string missing = dir.file("missing.jpg");
  CHECK_FALSE(cd::carries_int8_calibration(dir.file("m.cdm")));

  // Two of four: the first and the third, so the unreadable second and
  // fourth are never tried.
  auto model = cd::open_predictor(dir.file("m.cdm"), {"cpu", 1});
  CHECK(model->runtime() == "onednn");
  CHECK(cd::calibrate_int8(*model, {cat, missing, dog, missing}, 2, 8, 1, "list.csv") == 2);
  CHECK(model->runtime() == "onednn-int8");
  model->write_int8_model(dir.file("q.cdm"));
  CHECK(cd::carries_int8_calibration(dir.file("q.cdm")));
  CHECK(cd::open_predictor(dir.file("q.cdm"), {"cpu", 1})->runtime() == "onednn-int8");
  cd::RuntimeOptions f32;
  f32.threads = 1;
  f32.f32 = true;
  CHECK(cd::open_predictor(dir.file("q.cdm"), f32)->runtime() == "onednn");

  // Unreadable images are skipped; none readable is a clear error.
  auto again = cd::open_predictor(dir.file("m.cdm"), {"cpu", 1});
  CHECK(cd::calibrate_int8(*again, {cat, missing, dog, missing}, 4, 8, 1, "list.csv") == 2);
  auto none = cd::open_predictor(dir.file("m.cdm"), {"cpu", 1});
  CHECK_THROWS_WITH(cd::calibrate_int8(*none, {missing}, 4, 8, 1, "list.csv"),
                    Catch::Contains("no image of list.csv could be read to calibrate on"));
  CHECK_THROWS_AS(cd::calibrate_int8(*none, {}, 4, 8, 1, "list.csv"), cd::DataError);
}
