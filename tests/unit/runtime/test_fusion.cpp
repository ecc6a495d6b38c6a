#include <catch2/catch.hpp>

#include "graph_node.h"
#include "runtime/fusion.h"
#include "util/errors.h"

namespace {

using cd::test::node;

// Pad -> Conv -> Relu -> Conv 1x1 -> Add (the Relu's output as residual).
cd::InferenceGraph residual_graph() {
  cd::InferenceGraph g;
  g.weights["w"] = {{4, 3, 3, 3}, std::vector<float>(108, 0.1f)};
  g.weights["w2"] = {{4, 4, 1, 1}, std::vector<float>(16, 0.1f)};
  g.nodes = {node("Pad", {"input"}, "p", {{"pads", {0, 0, 1, 2, 0, 0, 1, 2}}}, {{"value", 0.f}}),
             node("Conv", {"p", "w"}, "c"), node("Relu", {"c"}, "r"),
             node("Conv", {"r", "w2"}, "c2"), node("Add", {"c2", "r"}, "s")};
  g.output = "s";
  return g;
}

}  // namespace

TEST_CASE("fusion folds a zero Pad, an activation and a residual Add into the convolutions",
          "[runtime]") {
  cd::InferenceGraph g = residual_graph();
  std::vector<cd::Op> ops = cd::fuse(g);
  REQUIRE(ops.size() == 2);
  CHECK(ops[0].node->op == "Conv");
  CHECK(ops[0].inputs[0] == "input");  // the Pad's input: the padding is the Conv's own
  CHECK(ops[0].pads == std::vector<std::int64_t>{1, 2, 1, 2});
  CHECK(ops[0].act.alg == dnnl::algorithm::eltwise_relu);
  CHECK(ops[0].output == "r");
  CHECK(ops[1].sum == "r");  // added in place: nothing reads r after the Add
  CHECK(ops[1].output == "s");
  CHECK_FALSE(ops[1].act);
}

TEST_CASE("fusion pairs a 1x1 Conv with the depthwise 3x3 Conv that alone reads it", "[runtime]") {
  cd::InferenceGraph g;
  g.weights["we"] = {{6, 3, 1, 1}, std::vector<float>(18, 0.1f)};
  g.weights["wd"] = {{6, 1, 3, 3}, std::vector<float>(54, 0.1f)};
  g.weights["wp"] = {{4, 6, 1, 1}, std::vector<float>(24, 0.1f)};
  g.nodes = {node("Conv", {"input", "we"}, "e", {{"kernel_shape", {1, 1}}}),
             node("Clip", {"e"}, "ea", {}, {{"min", 0.f}, {"max", 6.f}}),
             node("Pad", {"ea"}, "p", {{"pads", {0, 0, 0, 0, 0, 0, 1, 1}}}, {{"value", 0.f}}),
             node("Conv", {"p", "wd"}, "d", {{"group", {6}}, {"strides", {2, 2}}}),
             node("Conv", {"d", "wp"}, "out", {{"kernel_shape", {1, 1}}})};
  g.output = "out";
  std::vector<cd::Op> ops = cd::fuse(g);
  REQUIRE(ops.size() == 3);
  CHECK(ops[0].depthwise == 1);
  CHECK(ops[1].inputs[0] == "ea");  // the Pad is the depthwise Conv's own padding
  CHECK(ops[1].pads == std::vector<std::int64_t>{0, 0, 1, 1});
  CHECK(ops[1].depthwise == -1);
  CHECK(ops[2].depthwise == -1);  // a 1x1 Conv, but nothing depthwise after it

  cd::InferenceGraph read_twice = g;  // the expansion read by another node too
  read_twice.nodes.push_back(node("Add", {"ea", "ea"}, "twice"));
  CHECK(cd::fuse(read_twice)[0].depthwise == -1);
  cd::InferenceGraph five = g;  // a 5x5 depthwise Conv: the post-op takes 3x3 only
  five.weights["wd"] = {{6, 1, 5, 5}, std::vector<float>(150, 0.1f)};
  CHECK(cd::fuse(five)[0].depthwise == -1);
}

TEST_CASE("fusion keeps a node apart when another reader needs its result", "[runtime]") {
  cd::InferenceGraph g = residual_graph();
  g.nodes.push_back(node("Add", {"s", "c"}, "t"));  // c is read twice: the Relu stays apart
  g.output = "t";
  std::vector<cd::Op> ops = cd::fuse(g);
  REQUIRE(ops.size() == 4);  // the Pad still folds, and so does the first Add
  CHECK(ops[0].output == "c");
  CHECK_FALSE(ops[0].act);
  CHECK(ops[1].node->op == "Relu");
  CHECK(ops[2].sum == "r");
  CHECK(ops[3].node->op == "Add");
}

TEST_CASE("fusion refuses a Pad it cannot fold", "[runtime]") {
  cd::InferenceGraph g = residual_graph();
  g.nodes[0].floats["value"] = 1.f;
  CHECK_THROWS_WITH(cd::fuse(g), Catch::Contains("zero padding before a Conv"));
}
