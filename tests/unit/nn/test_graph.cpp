#include "catch_torch.h"

#include <set>

#include "nn/graph.h"

TEST_CASE("a graph's constants: one per tensor, however short-lived the tensors", "[graph]") {
  cd::GraphBuilder g;
  at::Tensor kept = at::ones({3});
  CHECK(g.weight("w", kept) == g.weight("w", kept));  // described twice, one constant
  // Temporaries of one size: each freed block is the next one's, so a
  // constant keyed by address alone would hand out a dead tensor's name.
  std::set<std::string> names;
  for (int i = 0; i < 50; ++i) names.insert(g.weight("t", at::full({4}, static_cast<float>(i))));
  CHECK(names.size() == 50);
  REQUIRE(g.graph.weights.size() == 51);
  CHECK(g.graph.weights.back().second[0].item<float>() == 49.0f);
}
