#include <catch2/catch.hpp>

#include <cstring>
#include <numeric>
#include <string>
#include <vector>

#include "runtime/graph.h"
#include "runtime/plan.h"
#include "util/errors.h"

// How a plan is put together (runtime/plan.h): buffers shared between values
// whose lives do not overlap, weights reordered once, and the jobs that do
// the reordering.

namespace {

using cd::onednn::memory;
using cd::onednn::PlanBuilder;

cd::InferenceGraph plan_test_graph() {
  cd::InferenceGraph g;
  g.output = "y";
  std::vector<float> w(16 * 8);
  std::iota(w.begin(), w.end(), 1.f);
  g.weights["w"] = {{16, 8, 1, 1}, w};
  g.weights["bias"] = {{16}, std::vector<float>(16, 0.5f)};
  return g;
}

// Every value of `m` as plain [dims] floats (a reorder back out of its layout).
std::vector<float> plan_plain_values(const dnnl::engine& engine, const memory& m,
                                     const cd::onednn::dims& d) {
  memory out(cd::onednn::plain_desc(d), engine);
  dnnl::stream stream(engine);
  dnnl::reorder(m, out).execute(stream, const_cast<memory&>(m), out);
  stream.wait();
  const auto* p = static_cast<const float*>(out.get_data_handle());
  return std::vector<float>(p, p + cd::onednn::product(d));
}

// A PlanBuilder on plan_test_graph(), as the executor sets one up.
struct PlanSetup {
  cd::InferenceGraph graph = plan_test_graph();
  dnnl::engine engine{dnnl::engine::kind::cpu, 0};
  cd::onednn::ConstantStore kept;
  PlanBuilder b{graph, engine, kept};
};

void run_plan_jobs(const std::vector<std::function<void()>>& jobs) {
  for (const auto& job : jobs) job();
}

}  // namespace

TEST_CASE("a plan gives a freed buffer to the next value instead of a new one", "[runtime][plan]") {
  PlanSetup setup;
  PlanBuilder& b = setup.b;

  int a = b.take(1000), c = b.take(4000);
  CHECK(a != c);
  b.release(a);
  // The freed buffer serves a smaller value, and a larger one (it grows).
  int d = b.take(500);
  CHECK(d == a);
  b.release(d);
  int e = b.take(3000);
  CHECK(e == a);
  CHECK(b.plan.buffer_bytes[static_cast<std::size_t>(a)] == 3000);
  CHECK(b.plan.buffer_bytes.size() == 2);
}

TEST_CASE("a plan picks the smallest free buffer that holds the value", "[runtime][plan]") {
  PlanSetup setup;
  PlanBuilder& b = setup.b;

  int big = b.take(8000), small = b.take(2000), mid = b.take(4000);
  b.release(big);
  b.release(small);
  b.release(mid);
  CHECK(b.take(3000) == mid);
  CHECK(b.take(1000) == small);
  CHECK(b.take(100) == big);  // the only one left
  // None free: a new buffer.
  CHECK(b.take(10) == 3);
  CHECK(b.plan.buffer_bytes == std::vector<std::size_t>{8000, 2000, 4000, 10});
}

TEST_CASE("a shared buffer is free only once every holder has released it", "[runtime][plan]") {
  PlanSetup setup;
  PlanBuilder& b = setup.b;

  int shared = b.take(1000);
  b.share(shared);  // a residual's sum writes into it: two holders
  b.release(shared);
  CHECK(b.take(1000) != shared);  // one holder is left
  b.release(shared);
  CHECK(b.take(1000) == shared);
  b.release(-1);  // the caller's input: nothing to give back
}

TEST_CASE("a plan reorders a weight once and hands out the same memory after", "[runtime][plan]") {
  PlanSetup setup;
  cd::InferenceGraph& g = setup.graph;
  dnnl::engine& engine = setup.engine;
  cd::onednn::ConstantStore& kept = setup.kept;
  const cd::onednn::dims wd{16, 8, 1, 1};
  const memory::desc plain = cd::onednn::plain_desc(wd);
  const memory::desc blocked(wd, cd::onednn::k_f32, memory::format_tag::ABcd8b8a);

  PlanBuilder& b = setup.b;
  memory first = b.constant("w", plain, blocked);
  memory again = b.constant("w", plain, blocked);
  CHECK(first.get_data_handle() == again.get_data_handle());
  REQUIRE(b.jobs.size() == 1);
  REQUIRE(b.constants.size() == 1);
  // A second layout of the same weight is a second constant.
  memory as_plain = b.constant("w", plain, plain);
  CHECK(as_plain.get_data_handle() != first.get_data_handle());
  CHECK(b.jobs.size() == 2);

  run_plan_jobs(b.jobs);
  CHECK(plan_plain_values(engine, first, wd) == g.weights["w"].values);
  CHECK(plan_plain_values(engine, as_plain, wd) == g.weights["w"].values);

  // The next plan (another batch size) finds it kept and reorders nothing.
  for (auto& [name, md, mem] : b.constants) kept[name].emplace_back(md, mem);
  PlanBuilder next(g, engine, kept);
  memory reused = next.constant("w", plain, blocked);
  CHECK(reused.get_data_handle() == first.get_data_handle());
  CHECK(next.jobs.empty());
  CHECK(next.constants.empty());
}

TEST_CASE("a plan refuses a weight whose size does not fit its operator, by name",
          "[runtime][plan]") {
  PlanSetup setup;
  PlanBuilder& b = setup.b;
  const cd::onednn::dims wrong{16, 4, 1, 1};
  CHECK_THROWS_AS(b.constant("w", cd::onednn::plain_desc(wrong), cd::onednn::plain_desc(wrong)),
                  cd::ModelError);
  CHECK_THROWS_WITH(b.constant("w", cd::onednn::plain_desc(wrong), cd::onednn::plain_desc(wrong)),
                    Catch::Matchers::Contains("weight 'w' has 128 values"));
  CHECK_THROWS_AS(b.weight("absent"), cd::ModelError);
  CHECK_THROWS_WITH(b.weight("absent"), Catch::Matchers::Contains("no weight 'absent'"));
  CHECK(b.jobs.empty());
}

TEST_CASE("a value already in the wanted layout is read as it is, another takes a reorder step",
          "[runtime][plan]") {
  PlanSetup setup;
  PlanBuilder& b = setup.b;
  const cd::onednn::dims d{2, 16, 5, 5};
  cd::onednn::Value x = b.fresh(cd::onednn::plain_desc(d));

  int temp = 7;
  cd::onednn::Value same = b.as_layout(x, x.md, temp);
  CHECK(temp == -1);
  CHECK(same.buffer == x.buffer);
  CHECK(b.plan.steps.empty());

  const memory::desc blocked(d, cd::onednn::k_f32, memory::format_tag::nChw8c);
  cd::onednn::Value moved = b.as_layout(x, blocked, temp);
  CHECK(temp == moved.buffer);
  CHECK(moved.buffer != x.buffer);
  CHECK(moved.md == blocked);
  CHECK(b.plan.steps.size() == 1);
  // The step's primitive is built by a job, after the walk.
  CHECK_FALSE(static_cast<bool>(b.plan.steps[0].prim));
  run_plan_jobs(b.jobs);
  CHECK(static_cast<bool>(b.plan.steps[0].prim));
}

TEST_CASE("a branch never gets a buffer another branch has held, the Ops after them may",
          "[runtime][plan]") {
  PlanSetup setup;
  PlanBuilder& b = setup.b;

  b.group = 0;
  int first = b.take(1000);
  b.release(first);
  CHECK(b.take(500) == first);  // its own branch reuses it
  b.release(first);
  b.group = 1;
  int second = b.take(500);  // another branch runs at the same time: a buffer of its own
  CHECK(second != first);
  b.release(second);
  b.group = -1;  // after the branches: any free buffer
  int after = b.take(800);
  CHECK((after == first || after == second));
  CHECK(b.plan.buffer_bytes.size() == 2);
}
