#include "catch_torch.h"

#include <future>
#include <memory>
#include <vector>

#include "cd-serve/batcher.h"
#include "fake_classifier.h"

using cd::serve::Batcher;
using cd::test::FakeClassifier;

namespace {

at::Tensor image_of(float value) { return at::full({3, 8, 8}, value); }

}  // namespace

TEST_CASE("the batcher answers every image with its own result, in batches of at most max_batch",
          "[batcher]") {
  auto model = std::make_shared<FakeClassifier>();
  std::vector<int> reported;
  std::mutex reported_mutex;
  {
    Batcher batcher({/*max_batch=*/4, /*max_delay_ms=*/50.0, /*queue_capacity=*/64}, [&](int n) {
      std::lock_guard<std::mutex> lock(reported_mutex);
      reported.push_back(n);
    });
    std::vector<std::future<float>> results;
    for (int i = 0; i < 10; ++i) results.push_back(batcher.submit(model, image_of(i / 10.0f)));
    for (int i = 0; i < 10; ++i) CHECK(results[i].get() == Approx(i / 10.0f));
  }
  int total = 0;
  for (int n : model->batch_sizes()) {
    CHECK(n <= 4);
    total += n;
  }
  CHECK(total == 10);
  CHECK(reported == model->batch_sizes());
  CHECK(model->batch_sizes().size() < 10);  // queued together, so some were batched
}

TEST_CASE("a full queue refuses at once, and stop() still answers what was queued", "[batcher]") {
  auto model = std::make_shared<FakeClassifier>();
  // A long delay keeps the worker waiting for a full batch of 8 that never comes.
  Batcher batcher({/*max_batch=*/8, /*max_delay_ms=*/10000.0, /*queue_capacity=*/2}, nullptr);
  auto a = batcher.submit(model, image_of(0.25f));
  auto b = batcher.submit(model, image_of(0.75f));
  auto refused = batcher.submit(model, image_of(0.5f));
  CHECK_FALSE(refused.valid());
  CHECK(batcher.depth() == 2);
  batcher.stop();
  CHECK(a.get() == Approx(0.25f));
  CHECK(b.get() == Approx(0.75f));
  CHECK_FALSE(batcher.submit(model, image_of(0.5f)).valid());  // stopped: nothing more is taken
}

TEST_CASE("a batch never mixes two models (hot reload)", "[batcher]") {
  auto old_model = std::make_shared<FakeClassifier>();
  auto new_model = std::make_shared<FakeClassifier>();
  Batcher batcher({8, 10000.0, 16}, nullptr);
  auto a = batcher.submit(old_model, image_of(0.1f));
  auto b = batcher.submit(new_model, image_of(0.2f));
  auto c = batcher.submit(old_model, image_of(0.3f));
  batcher.stop();
  CHECK(a.get() == Approx(0.1f));
  CHECK(b.get() == Approx(0.2f));
  CHECK(c.get() == Approx(0.3f));
  int old_images = 0, new_images = 0;
  for (int n : old_model->batch_sizes()) old_images += n;
  for (int n : new_model->batch_sizes()) new_images += n;
  CHECK(old_images == 2);
  CHECK(new_images == 1);
}

TEST_CASE("a model that throws fails its batch's futures, not the worker", "[batcher]") {
  struct Broken : FakeClassifier {
    std::vector<float> predict(const at::Tensor&) override {
      throw std::runtime_error("broken weights");
    }
  };
  auto broken = std::make_shared<Broken>();
  auto good = std::make_shared<FakeClassifier>();
  Batcher batcher({4, 1.0, 16}, nullptr);
  auto bad = batcher.submit(broken, image_of(0.5f));
  CHECK_THROWS_WITH(bad.get(), "broken weights");
  CHECK(batcher.submit(good, image_of(0.5f)).get() == Approx(0.5f));
}
