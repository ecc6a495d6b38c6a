#include <catch2/catch.hpp>

#include <chrono>
#include <future>
#include <memory>
#include <vector>

#include "cd-serve/batcher.h"
#include "fake_predictor.h"

using cd::serve::Batcher;
using cd::serve::Inference;
using cd::test::FakePredictor;

namespace {

std::vector<float> image_of(float value) { return std::vector<float>(3 * 8 * 8, value); }

bool answered_within(std::future<Inference>& f, std::chrono::seconds limit) {
  return f.wait_for(limit) == std::future_status::ready;
}

}  // namespace

TEST_CASE("the batcher answers every image with its own result, in batches of at most max_batch",
          "[batcher]") {
  auto model = std::make_shared<FakePredictor>();
  std::vector<int> reported;
  std::mutex reported_mutex;
  {
    Batcher batcher({/*max_batch=*/4, /*max_delay_ms=*/50.0, /*queue_capacity=*/64,
                     /*max_in_flight=*/16},
                    [&](int n) {
                      std::lock_guard<std::mutex> lock(reported_mutex);
                      reported.push_back(n);
                    });
    for (int i = 0; i < 10; ++i) REQUIRE(batcher.admit());  // ten images on their way
    std::vector<std::future<Inference>> results;
    for (int i = 0; i < 10; ++i)
      results.push_back(batcher.submit(model, image_of(i / 10.0f), /*admitted=*/true));
    for (int i = 0; i < 10; ++i) {
      Inference r = results[i].get();
      CHECK(r.p_dog == Approx(i / 10.0f));
      CHECK(r.batch >= 1);
      CHECK(r.batch <= 4);
      CHECK(r.queue_s >= 0);
      CHECK(r.forward_s >= 0);
    }
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

TEST_CASE("a lone image runs at once: nothing admitted, so nothing to wait for", "[batcher]") {
  auto model = std::make_shared<FakePredictor>();
  Batcher batcher({/*max_batch=*/8, /*max_delay_ms=*/60000.0, /*queue_capacity=*/16}, nullptr);
  auto a = batcher.submit(model, image_of(0.25f));
  REQUIRE(answered_within(a, std::chrono::seconds(20)));  // not after the 60 s delay
  Inference r = a.get();
  CHECK(r.p_dog == Approx(0.25f));
  CHECK(r.batch == 1);
}

TEST_CASE("an admitted image is waited for and joins the batch, a withdrawn one is not",
          "[batcher]") {
  auto model = std::make_shared<FakePredictor>();
  Batcher batcher({/*max_batch=*/8, /*max_delay_ms=*/60000.0, /*queue_capacity=*/16}, nullptr);
  for (int i = 0; i < 3; ++i) REQUIRE(batcher.admit());
  auto a = batcher.submit(model, image_of(0.1f), true);
  CHECK(a.wait_for(std::chrono::milliseconds(200)) == std::future_status::timeout);
  auto b = batcher.submit(model, image_of(0.2f), true);
  CHECK(a.wait_for(std::chrono::milliseconds(200)) == std::future_status::timeout);
  batcher.withdraw();  // the third image failed to decode: run what is there
  REQUIRE(answered_within(a, std::chrono::seconds(20)));
  REQUIRE(answered_within(b, std::chrono::seconds(20)));
  Inference ra = a.get(), rb = b.get();
  CHECK(ra.batch == 2);
  CHECK(rb.batch == 2);
  CHECK(ra.p_dog == Approx(0.1f));
  CHECK(rb.p_dog == Approx(0.2f));
  CHECK(ra.queue_s >= 0.3);  // it waited for its company
  CHECK(model->batch_sizes() == std::vector<int>{2});
}

TEST_CASE("a full queue refuses at once, and stop() still answers what was queued", "[batcher]") {
  auto model = std::make_shared<FakePredictor>();
  // An admitted image that never comes and a long delay keep the worker waiting.
  Batcher batcher({/*max_batch=*/8, /*max_delay_ms=*/10000.0, /*queue_capacity=*/2}, nullptr);
  REQUIRE(batcher.admit());
  auto a = batcher.submit(model, image_of(0.25f));
  auto b = batcher.submit(model, image_of(0.75f));
  auto refused = batcher.submit(model, image_of(0.5f));
  CHECK_FALSE(refused.valid());
  CHECK(batcher.depth() == 2);
  batcher.stop();
  CHECK(a.get().p_dog == Approx(0.25f));
  CHECK(b.get().p_dog == Approx(0.75f));
  CHECK_FALSE(batcher.submit(model, image_of(0.5f)).valid());  // stopped: nothing more is taken
}

TEST_CASE("a batch never mixes two models (hot reload)", "[batcher]") {
  auto old_model = std::make_shared<FakePredictor>();
  auto new_model = std::make_shared<FakePredictor>();
  Batcher batcher({8, 10000.0, 16}, nullptr);
  REQUIRE(batcher.admit());  // keeps the worker waiting until stop()
  auto a = batcher.submit(old_model, image_of(0.1f));
  auto b = batcher.submit(new_model, image_of(0.2f));
  auto c = batcher.submit(old_model, image_of(0.3f));
  batcher.stop();
  CHECK(a.get().p_dog == Approx(0.1f));
  CHECK(b.get().p_dog == Approx(0.2f));
  CHECK(c.get().p_dog == Approx(0.3f));
  int old_images = 0, new_images = 0;
  for (int n : old_model->batch_sizes()) old_images += n;
  for (int n : new_model->batch_sizes()) new_images += n;
  CHECK(old_images == 2);
  CHECK(new_images == 1);
}

TEST_CASE("a model that throws fails its batch's futures, not the worker", "[batcher]") {
  struct Broken : FakePredictor {
    std::vector<float> predict(const float*, std::size_t) override {
      throw std::runtime_error("broken weights");
    }
  };
  auto broken = std::make_shared<Broken>();
  auto good = std::make_shared<FakePredictor>();
  Batcher batcher({4, 1.0, 16}, nullptr);
  auto bad = batcher.submit(broken, image_of(0.5f));
  CHECK_THROWS_WITH(bad.get(), "broken weights");
  CHECK(batcher.submit(good, image_of(0.5f)).get().p_dog == Approx(0.5f));
}

TEST_CASE("admission bounds the images in flight and refuses beyond the queue's capacity",
          "[batcher]") {
  auto model = std::make_shared<FakePredictor>();
  // Two in flight at most; capacity three: in flight plus waiting.
  Batcher batcher({/*max_batch=*/8, /*max_delay_ms=*/60000.0, /*queue_capacity=*/3,
                   /*max_in_flight=*/2},
                  nullptr);
  REQUIRE(batcher.admit());
  REQUIRE(batcher.admit());
  auto third = std::async(std::launch::async, [&] { return batcher.admit(); });
  CHECK(third.wait_for(std::chrono::milliseconds(300)) == std::future_status::timeout);
  CHECK_FALSE(batcher.admit());  // 2 in flight + 1 waiting = capacity: refused, not queued
  batcher.withdraw();            // one decode failed: room for the waiting one
  REQUIRE(third.wait_for(std::chrono::seconds(20)) == std::future_status::ready);
  CHECK(third.get());
  auto a = batcher.submit(model, image_of(0.3f), true);
  auto b = batcher.submit(model, image_of(0.6f), true);  // nothing more on its way: runs now
  REQUIRE(a.wait_for(std::chrono::seconds(20)) == std::future_status::ready);
  CHECK(a.get().p_dog == Approx(0.3f));
  CHECK(b.get().p_dog == Approx(0.6f));
  CHECK(batcher.admit());  // the worker took them: room again
  batcher.withdraw();
  batcher.stop();
  CHECK_FALSE(batcher.admit());
}
