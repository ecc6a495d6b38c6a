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
