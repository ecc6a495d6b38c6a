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

namespace {

cd::GraphNode fusion_matrix_conv(std::string in, std::string w, std::string out) {
  return node(
      "Conv", {std::move(in), std::move(w)}, std::move(out),
      {{"kernel_shape", {1, 1}}, {"strides", {1, 1}}, {"pads", {0, 0, 0, 0}}, {"group", {1}}});
}

// Transposes and 1x1 Convs along the width and then the height: a resize.
cd::InferenceGraph resize_graph() {
  cd::InferenceGraph g;
  // A resize's matrix is mostly zeros: a few neighbours per row.
  std::vector<float> a(20, 0.f);
  for (std::size_t i = 0; i < 4; ++i) a[i * 5 + i] = 0.6f;
  g.weights["a"] = {{4, 5, 1, 1}, a};
  g.nodes = {node("Transpose", {"input"}, "t1", {{"perm", {0, 3, 2, 1}}}),
             fusion_matrix_conv("t1", "a", "c1"),
             node("Transpose", {"c1"}, "t2", {{"perm", {0, 2, 1, 3}}}),
             fusion_matrix_conv("t2", "a", "c2"),
             node("Transpose", {"c2"}, "t3", {{"perm", {0, 3, 1, 2}}}),
             node("GlobalAveragePool", {"t3"}, "g")};
  g.output = "g";
  return g;
}

}  // namespace

TEST_CASE("fusion runs a resize's and a mirror's Transposes and Convs as one step", "[runtime]") {
  cd::InferenceGraph g = resize_graph();
  std::vector<cd::Op> ops = cd::fuse(g);
  REQUIRE(ops.size() == 2);
  CHECK(ops[0].inputs == std::vector<std::string>{"input"});
  CHECK(ops[0].output == "t3");
  REQUIRE(ops[0].axis_matrices.size() == 2);
  CHECK(ops[0].axis_matrices[0].axis == 3);
  CHECK(ops[0].axis_matrices[1].axis == 2);
  CHECK(ops[0].axis_matrices[1].weight == "a");

  cd::InferenceGraph mirror;
  mirror.weights["f"] = {{5, 5, 1, 1}, std::vector<float>(25, 0.f)};
  mirror.nodes = {node("Transpose", {"input"}, "t1", {{"perm", {0, 3, 2, 1}}}),
                  fusion_matrix_conv("t1", "f", "c1"),
                  node("Transpose", {"c1"}, "t2", {{"perm", {0, 3, 2, 1}}})};
  mirror.output = "t2";
  ops = cd::fuse(mirror);
  REQUIRE(ops.size() == 1);
  REQUIRE(ops[0].axis_matrices.size() == 1);
  CHECK(ops[0].axis_matrices[0].axis == 3);
  CHECK(ops[0].output == "t2");
}

TEST_CASE("fusion leaves the Transposes and Convs apart when the chain is not a plain matrix",
          "[runtime]") {
  SECTION("a value inside the chain has a second reader") {
    cd::InferenceGraph g = resize_graph();
    g.nodes.push_back(node("GlobalAveragePool", {"c1"}, "g2"));
    CHECK(cd::fuse(g).size() == 7);
  }
  SECTION("a Conv with a bias") {
    cd::InferenceGraph g = resize_graph();
    g.weights["b"] = {{4}, std::vector<float>(4, 0.f)};
    g.nodes[3].inputs.push_back("b");
    CHECK(cd::fuse(g).size() == 6);
  }
  SECTION("a dense matrix, which runs faster as the Conv it is") {
    cd::InferenceGraph g = resize_graph();
    g.weights["a"].values.assign(20, 0.2f);
    CHECK(cd::fuse(g).size() == 6);
  }
  SECTION("the last Transpose puts the axes elsewhere") {
    cd::InferenceGraph g = resize_graph();
    g.nodes[4].ints["perm"] = {0, 3, 2, 1};
    for (const cd::Op& op : cd::fuse(g)) CHECK(op.axis_matrices.empty());
  }
}

TEST_CASE("branches: Ops on the input side by side where as many as threads and of like size",
          "[runtime]") {
  // Two paths of two Convs on the input, then a Concat.
  auto graph = [](int second_path_convs) {
    cd::InferenceGraph g;
    g.weights["w"] = {{3, 3, 1, 1}, std::vector<float>(9, 0.1f)};
    g.nodes = {fusion_matrix_conv("input", "w", "a1"), fusion_matrix_conv("a1", "w", "a2")};
    std::string last = "input";
    for (int i = 0; i < second_path_convs; ++i) {
      std::string out = "b" + std::to_string(i);
      g.nodes.push_back(fusion_matrix_conv(last, "w", out));
      last = out;
    }
    g.nodes.push_back(node("Concat", {"a2", last}, "both", {{"axis", {1}}}));
    g.output = "both";
    return g;
  };
  cd::InferenceGraph even = graph(2);
  std::vector<cd::Op> ops = cd::fuse(even);
  CHECK(cd::branches(ops, 2) == std::vector<int>{0, 0, 1, 1, -1});
  CHECK(cd::branches(ops, 4) == std::vector<int>(5, -1));  // two would leave two cores idle
  cd::InferenceGraph longer = graph(4);                    // 2 Ops beside 4: still alike
  ops = cd::fuse(longer);
  CHECK(cd::branches(ops, 2) == std::vector<int>{0, 0, 1, 1, 1, 1, -1});
  cd::InferenceGraph uneven = graph(5);  // 2 Ops beside 5: a side path, in order
  ops = cd::fuse(uneven);
  CHECK(cd::branches(ops, 2) == std::vector<int>(8, -1));
}
