#include "catch_torch.h"

#include <algorithm>
#include <nlohmann/json.hpp>
#include <opencv2/imgcodecs.hpp>

#include "cd-eval/evaluate.h"
#include "domain/manifest.h"
#include "domain/model_file.h"
#include "helpers.h"
#include "nn/nets.h"
#include "nn/weights.h"
#include "util/atomic_file.h"
#include "util/errors.h"

using cd::test::source_path;
using json = nlohmann::json;

namespace {

// An untrained compact network at 32 px: its answers are arbitrary, but the
// outputs must agree with each other whatever they are.
std::string write_model(const cd::test::TempDir& dir) {
  torch::manual_seed(3);
  auto net = cd::build_network("compact", 32);
  cd::ModelMeta meta;
  meta.preprocess.size = 32;
  std::string path = dir.file("model.cdm");
  cd::write_file_atomic(path, cd::pack_file({cd::FileKind::k_model, cd::meta_to_json(meta),
                                             cd::serialize_module(*net)}));
  return path;
}

void write_test_csv(const cd::test::TempDir& dir, const std::vector<cd::Sample>& samples) {
  cd::write_file_atomic(dir.file("data/test.csv"), cd::format_manifest(samples));
}

int count_lines(const std::string& text) {
  return static_cast<int>(std::count(text.begin(), text.end(), '\n'));
}

}  // namespace

TEST_CASE("cd-eval's outputs agree: metrics, confusion, misclassified, curves, PNGs",
          "[evaluate]") {
  cd::test::TempDir dir;
  cd::make_dirs(dir.file("data"));
  write_test_csv(dir, cd::test::fixture_photos());
  cd::EvalParams params;
  params.model = write_model(dir);
  params.data = dir.file("data");
  params.output = dir.file("eval");
  params.threads = 2;
  params.batch_size = 3;
  cd::BinaryMetrics m = cd::run_eval(params);

  json metrics = json::parse(cd::read_file(dir.file("eval/metrics.json")));
  CHECK(metrics["n"] == 8);
  CHECK(m.tp + m.fp + m.tn + m.fn == 8);
  CHECK(metrics["accuracy"].get<double>() == Approx((m.tp + m.tn) / 8.0));
  CHECK(metrics["tp"] == m.tp);
  json confusion = json::parse(cd::read_file(dir.file("eval/plots/confusion.json")));
  REQUIRE(confusion.size() == 8);
  int wrong = 0, predicted_dog = 0;
  for (const auto& c : confusion) {
    wrong += c["actual"] != c["predicted"];
    predicted_dog += c["predicted"] == "dog";
  }
  CHECK(predicted_dog == static_cast<int>(m.tp + m.fp));
  CHECK(count_lines(cd::read_file(dir.file("eval/misclassified.csv"))) == 1 + wrong);
  json roc = json::parse(cd::read_file(dir.file("eval/plots/roc.json")))["roc"];
  REQUIRE(roc.size() >= 2);
  CHECK(roc.front()["fpr"] == 0.0);
  CHECK(roc.back()["tpr"] == 1.0);
  for (const char* png : {"eval/confusion.png", "eval/roc.png"})
    CHECK_FALSE(cv::imread(dir.file(png)).empty());
}

TEST_CASE("cd-eval refuses an empty split and names an unreadable test image", "[evaluate]") {
  cd::test::TempDir dir;
  cd::make_dirs(dir.file("data"));
  cd::EvalParams params;
  params.model = write_model(dir);
  params.data = dir.file("data");
  params.output = dir.file("eval");
  write_test_csv(dir, {});
  CHECK_THROWS_WITH(cd::run_eval(params), Catch::Contains("has no images"));
  auto samples = cd::test::fixture_photos();
  samples[2].path = dir.file("gone.jpg");
  write_test_csv(dir, samples);
  CHECK_THROWS_WITH(cd::run_eval(params),
                    Catch::Contains("gone.jpg") && Catch::Contains("rerun cd-prepare"));
}
