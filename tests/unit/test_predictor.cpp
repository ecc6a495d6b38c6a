#include <catch2/catch.hpp>

#include "fake_predictor.h"
#include "helpers.h"
#include "runtime/predictor.h"

using cd::test::source_path;

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
