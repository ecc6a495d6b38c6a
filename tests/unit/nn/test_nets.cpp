// The networks (nets.cpp): built by name with their
// checks, the shape of what they answer, their cost, and the inference copy
// that folds batch norm and must answer as the trained network does.
#include "catch_torch.h"

#include <string>

#include "nn/nets.h"
#include "util/errors.h"

TEST_CASE("nets: every architecture builds by name and answers one logit per image", "[nets]") {
  torch::NoGradGuard no_grad;
  for (const char* name : {"baseline", "compact"}) {
    INFO(name);
    cd::Network net = cd::build_network(name, 64);
    net->eval();
    at::Tensor out = net->forward(at::randn({3, 3, 64, 64}));
    CHECK(out.sizes() == at::IntArrayRef({3, 1}));
    CHECK(cd::count_parameters(*net) > 0);
  }
  const auto& names = cd::architecture_names();
  CHECK(std::find(names.begin(), names.end(), "efficientnet-lite2") != names.end());
}

TEST_CASE("nets: an unknown architecture or feature mode is a UsageError naming the choices",
          "[nets]") {
  CHECK_THROWS_AS(cd::build_network("resnet", 64), cd::UsageError);
  CHECK_THROWS_WITH(cd::build_network("resnet", 64), Catch::Contains("compact"));
  CHECK_THROWS_AS(cd::parse_darknet_features("everything"), cd::UsageError);
  CHECK(cd::to_string(cd::parse_darknet_features("rich-max")) == "rich-max");
}

TEST_CASE("nets: the cost of a forward pass grows with the square of the side", "[nets]") {
  double small = cd::forward_gflops("compact", 64), large = cd::forward_gflops("compact", 128);
  REQUIRE(small > 0);
  CHECK(large / small == Approx(4.0).epsilon(0.1));
}

TEST_CASE("nets: the folded inference copy answers as the trained network in eval mode", "[nets]") {
  torch::NoGradGuard no_grad;
  cd::Network net = cd::build_network("compact", 64);
  // Batch-norm statistics that are not the identity, so folding has work to do.
  net->train();
  for (int i = 0; i < 3; ++i) net->forward(at::randn({8, 3, 64, 64}) * 2 + 0.5);
  net->eval();
  at::Tensor x = at::randn({2, 3, 64, 64});
  at::Tensor expected = net->forward(x);
  cd::Network copy = cd::folded_copy(*net, "compact", 64, nlohmann::json::object(), at::kCPU);
  at::Tensor got = copy->forward(x.contiguous(at::MemoryFormat::ChannelsLast));
  CHECK(at::allclose(got, expected, 1e-4, 1e-4));
  CHECK(net->is_training() == false);
}
