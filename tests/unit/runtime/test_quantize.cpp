#include <catch2/catch.hpp>

#include <cmath>
#include <string>
#include <vector>

#include "graph_node.h"
#include "runtime/fusion.h"
#include "runtime/graph.h"
#include "runtime/plan.h"
#include "runtime/quantize.h"
#include "util/errors.h"

// INT8's decisions (runtime/quantize.h): which Convs run on 8-bit data, in
// which type and scale, where a Conv writes its result already quantised,
// and the per-channel scales of its weights and bias. The executor's tests
// check the numbers such a plan computes; these check the choices.

namespace {

using cd::onednn::memory;
using cd::test::node;

// Conv+Clip(0,6) -> Conv 1x1 -> depthwise Conv 3x3 -> grouped Conv (2 groups) -> Sigmoid.
cd::InferenceGraph int8_test_graph() {
  cd::InferenceGraph g;
  std::vector<float> w1(8 * 3 * 3 * 3, 0.25f);
  for (std::size_t i = 0; i < 27; ++i) w1[i] = -0.5f;  // channel 0: largest |w| 0.5
  g.weights["w1"] = {{8, 3, 3, 3}, w1};
  g.weights["b1"] = {{8}, std::vector<float>(8, 1.f)};
  std::vector<float> w2(8 * 8, 0.f);  // channel 0 all zero
  for (std::size_t i = 8; i < w2.size(); ++i) w2[i] = 0.1f;
  g.weights["w2"] = {{8, 8, 1, 1}, w2};
  g.weights["wd"] = {{8, 1, 3, 3}, std::vector<float>(72, 0.2f)};
  g.weights["wg"] = {{8, 4, 1, 1}, std::vector<float>(32, 0.3f)};
  g.nodes = {node("Conv", {"input", "w1", "b1"}, "c1", {{"pads", {1, 1, 1, 1}}}),
             node("Clip", {"c1"}, "r1", {}, {{"min", 0.f}, {"max", 6.f}}),
             node("Conv", {"r1", "w2"}, "c2"),
             node("Conv", {"c2", "wd"}, "c3", {{"group", {8}}, {"pads", {1, 1, 1, 1}}}),
             node("Conv", {"c3", "wg"}, "c4", {{"group", {2}}}),
             node("Sigmoid", {"c4"}, "y")};
  g.output = "y";
  return g;
}

// A PlanBuilder set up as the executor sets one up for INT8.
struct Int8Setup {
  cd::InferenceGraph graph = int8_test_graph();
  std::vector<cd::Op> ops = cd::fuse(graph);
  std::vector<cd::onednn::Range> ranges = std::vector<cd::onednn::Range>(ops.size());
  dnnl::engine engine{dnnl::engine::kind::cpu, 0};
  cd::onednn::ConstantStore kept;
  cd::onednn::PlanBuilder b{graph, engine, kept};

  Int8Setup() {
    b.precision = cd::onednn::Precision::k_int8;
    b.ranges = &ranges;
    b.ops = &ops;
    for (std::size_t i = 0; i < ops.size(); ++i)
      for (const std::string& in : ops[i].inputs) b.readers[in].push_back(i);
  }
  // The Op whose node computes `output` (before fusion renamed it).
  std::size_t at(const std::string& output) const {
    for (std::size_t i = 0; i < ops.size(); ++i)
      if (ops[i].node->output == output) return i;
    FAIL("no Op computes " << output);
    return 0;
  }
};

}  // namespace

TEST_CASE("INT8 reads a never-negative input as u8 to 255 and a signed one as s8 to 127",
          "[runtime][int8]") {
  Int8Setup s;
  const std::size_t first = s.at("c1"), second = s.at("c2"), depthwise = s.at("c3");
  s.ranges[first] = {0.f, 4.f};
  s.ranges[second] = {-2.f, 1.f};
  s.ranges[depthwise] = {0.f, 6.f};
  auto a = cd::onednn::int8_input(s.b, s.ops[first]);
  REQUIRE(a);
  CHECK(a->type == memory::data_type::u8);
  CHECK(a->scale == Approx(255.f / 4.f));
  CHECK(a->weight_reach == 63.f);  // dense: u8 x s8 pairs stay within 16 bits
  auto b = cd::onednn::int8_input(s.b, s.ops[second]);
  REQUIRE(b);
  CHECK(b->type == memory::data_type::s8);
  CHECK(b->scale == Approx(127.f / 2.f));  // the larger of |lo| and |hi|
  CHECK(b->weight_reach == 127.f);
  auto d = cd::onednn::int8_input(s.b, s.ops[depthwise]);
  REQUIRE(d);
  CHECK(d->type == memory::data_type::u8);
  CHECK(d->scale == Approx(255.f / 6.f));
  CHECK(d->weight_reach == 127.f);  // depthwise: 32-bit products
}

TEST_CASE("INT8 leaves f32 what was never calibrated, grouped Convs and f32 plans",
          "[runtime][int8]") {
  Int8Setup s;
  CHECK_FALSE(cd::onednn::int8_input(s.b, s.ops[s.at("c1")]));  // no range seen
  s.ranges[s.at("c3")] = {0.f, 1.f};
  CHECK(cd::onednn::int8_input(s.b, s.ops[s.at("c3")]));  // depthwise: one group per channel
  s.ranges[s.at("c4")] = {0.f, 1.f};
  CHECK_FALSE(cd::onednn::int8_input(s.b, s.ops[s.at("c4")]));  // 2 groups of 4 channels
  s.ranges[s.at("c1")] = {0.f, 1.f};
  s.b.precision = cd::onednn::Precision::k_float;
  CHECK_FALSE(cd::onednn::int8_input(s.b, s.ops[s.at("c1")]));
}

TEST_CASE("a Conv writes its result quantised for the one INT8 Conv that reads it",
          "[runtime][int8]") {
  Int8Setup s;
  const std::size_t first = s.at("c1");
  s.ranges[first] = {0.f, 4.f};
  s.ranges[s.at("c2")] = {0.f, 6.f};
  REQUIRE(s.ops[first].act.alg == dnnl::algorithm::eltwise_clip);

  cd::Activation act = s.ops[first].act;
  auto emit = cd::onednn::int8_output(s.b, s.ops[first], act);
  REQUIRE(emit);
  CHECK(emit->type == memory::data_type::u8);
  CHECK(emit->scale == Approx(255.f / 6.f));
  // The Clip now runs on the scaled values: its bounds scale with them.
  CHECK(act.alpha == Approx(0.f));
  CHECK(act.beta == Approx(255.f));

  SECTION("a ReLU of any slope commutes with the scale; other activations do not") {
    cd::Activation leaky{dnnl::algorithm::eltwise_relu, 0.1f, 0.f};
    CHECK(cd::onednn::int8_output(s.b, s.ops[first], leaky));
    CHECK(leaky.alpha == Approx(0.1f));
    cd::Activation sigmoid{dnnl::algorithm::eltwise_logistic, 0.f, 0.f};
    CHECK_FALSE(cd::onednn::int8_output(s.b, s.ops[first], sigmoid));
  }
  SECTION("not when the reader runs in f32") {
    s.ranges[s.at("c2")] = {};
    cd::Activation clip = s.ops[first].act;
    CHECK_FALSE(cd::onednn::int8_output(s.b, s.ops[first], clip));
    CHECK(clip.beta == Approx(6.f));
  }
  SECTION("not when a second Op reads the result") {
    s.b.readers[s.ops[first].output].push_back(s.at("c4"));
    cd::Activation clip = s.ops[first].act;
    CHECK_FALSE(cd::onednn::int8_output(s.b, s.ops[first], clip));
  }
}

TEST_CASE("the graph's output and a residual's sum stay f32", "[runtime][int8]") {
  Int8Setup s;
  for (auto& r : s.ranges) r = {0.f, 1.f};
  cd::Activation none;
  REQUIRE(cd::onednn::int8_output(s.b, s.ops[s.at("c1")], none));
  s.graph.output = s.ops[s.at("c1")].output;  // what the caller reads, though a Conv reads it too
  CHECK_FALSE(cd::onednn::int8_output(s.b, s.ops[s.at("c1")], none));
  s.graph.output = "y";
  cd::Op with_sum = s.ops[s.at("c1")];
  with_sum.sum = "r0";
  CHECK_FALSE(cd::onednn::int8_output(s.b, with_sum, none));
}

TEST_CASE(
    "an INT8 Conv scales each output channel's weights to their reach and its bias to the "
    "accumulator",
    "[runtime][int8]") {
  Int8Setup s;
  const cd::onednn::Int8Input src{memory::data_type::u8, 127.f / 4.f};

  cd::onednn::Int8Conv q = cd::onednn::int8_conv(s.b, *s.ops[s.at("c1")].node, src, {8, 3, 3, 3});
  REQUIRE(q.output_scales.size() == 8);
  // Channel 0's largest |w| is 0.5, the others' 0.25.
  CHECK(q.output_scales[0] == Approx(1.f / (src.scale * 127.f / 0.5f)));
  CHECK(q.output_scales[1] == Approx(1.f / (src.scale * 127.f / 0.25f)));
  const auto* bias = static_cast<const float*>(q.bias.get_data_handle());
  for (std::size_t c = 0; c < 8; ++c) CHECK(bias[c] * q.output_scales[c] == Approx(1.f));

  // Weights to 63 (a dense Conv on u8 input): each channel's scale halves.
  cd::onednn::Int8Input dense = src;
  dense.weight_reach = 63.f;
  cd::onednn::Int8Conv h = cd::onednn::int8_conv(s.b, *s.ops[s.at("c1")].node, dense, {8, 3, 3, 3});
  CHECK(h.output_scales[0] == Approx(1.f / (src.scale * 63.f / 0.5f)));

  // An all-zero channel keeps scale 1 instead of dividing by zero; no bias is zeros.
  cd::onednn::Int8Conv z = cd::onednn::int8_conv(s.b, *s.ops[s.at("c2")].node, src, {8, 8, 1, 1});
  CHECK(std::isfinite(z.output_scales[0]));
  CHECK(z.output_scales[0] == Approx(1.f / src.scale));
  const auto* zbias = static_cast<const float*>(z.bias.get_data_handle());
  CHECK(zbias[0] == 0.f);
  CHECK(zbias[7] == 0.f);
}

TEST_CASE("an INT8 Conv refuses a bias that is not one value per channel", "[runtime][int8]") {
  Int8Setup s;
  s.graph.weights["b1"] = {{4}, std::vector<float>(4, 1.f)};
  const cd::onednn::Int8Input src{memory::data_type::u8, 1.f};
  CHECK_THROWS_AS(cd::onednn::int8_conv(s.b, *s.ops[s.at("c1")].node, src, {8, 3, 3, 3}),
                  cd::ModelError);
  CHECK_THROWS_WITH(cd::onednn::int8_conv(s.b, *s.ops[s.at("c1")].node, src, {8, 3, 3, 3}),
                    Catch::Matchers::Contains("bias 'b1'"));
}
