#include "catch_torch.h"

#include "fake_classifier.h"
#include "helpers.h"
#include "nn/batch_predict.h"
#include "util/atomic_file.h"

using cd::test::source_path;

TEST_CASE("predict_all batches good images, reports bad ones, and keeps input order",
          "[batch_predict]") {
  cd::test::TempDir dir;
  cd::test::write_bytes(dir.file("bad.jpg"), "not an image");
  cd::test::FakeClassifier model(/*size=*/16);
  std::vector<cd::Prediction> items{{source_path("tests/fixtures/photos/cat.1.jpg"), ""},
                                    {dir.file("bad.jpg"), ""},
                                    {"/nonexistent.jpg", "no such file or directory"},
                                    {source_path("tests/fixtures/photos/dog.1.jpg"), ""},
                                    {source_path("tests/fixtures/photos/dog.2.jpg"), ""}};
  std::vector<std::string> done;
  cd::predict_all(model, items, /*batch_size=*/3, /*threads=*/2,
                  [&](const cd::Prediction& p) { done.push_back(p.path); });
  REQUIRE(done.size() == 5);
  for (std::size_t i = 0; i < items.size(); ++i) CHECK(done[i] == items[i].path);
  CHECK(items[1].error == "not a decodable image (expected JPEG, PNG, BMP or WebP)");
  CHECK(items[2].error == "no such file or directory");  // kept, never read
  // Only decodable images reach the model: 1 of the first 3, then 2.
  CHECK(model.batch_sizes() == std::vector<int>{1, 2});
  for (int i : {0, 3, 4}) {
    CHECK(items[i].error.empty());
    CHECK(items[i].p_dog > 0.0);
    CHECK(items[i].p_dog < 1.0);
  }
  // The fake model's P(dog) is the mean pixel: the same image gives the same answer.
  std::vector<cd::Prediction> again{{items[3].path, ""}};
  cd::predict_all(model, again, 1, 1, [](const cd::Prediction&) {});
  CHECK(again[0].p_dog == items[3].p_dog);
  CHECK(items[0].decision(0.5).name() == (items[0].p_dog >= 0.5 ? "dog" : "cat"));
}
