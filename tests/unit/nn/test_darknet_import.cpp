#include "catch_torch.h"

#include <fstream>
#include <set>

#include "helpers.h"
#include "nn/darknet_import.h"
#include "nn/image_tensor.h"
#include "nn/nets.h"
#include "nn/weights.h"
#include "util/atomic_file.h"
#include "util/errors.h"

using cd::test::source_path;

namespace {

const std::string k_darknet = "data/pretrained/darknet-tiny-imagenet";

std::vector<std::string> lines(const std::string& rel) {
  std::ifstream in(source_path(rel));
  std::vector<std::string> out;
  for (std::string line; std::getline(in, line);)
    if (!line.empty()) out.push_back(line);
  return out;
}

}  // namespace

TEST_CASE("the imported ImageNet head puts cats in cat classes and dogs in dog breeds",
          "[darknet]") {
  auto imported = cd::import_tfjs_darknet(source_path(k_darknet));
  cd::Network net = cd::build_network("darknet", 224, imported.params);
  cd::deserialize_module(*net, imported.weights, "import");
  net->eval();
  std::vector<std::string> names = lines(k_darknet + "/imagenet.shortnames.list");
  REQUIRE(names.size() == 1000);
  auto cat_list = lines("tests/fixtures/imagenet/cat-classes.txt");
  auto dog_list = lines("tests/fixtures/imagenet/dog-breeds.txt");
  std::set<std::string> cats(cat_list.begin(), cat_list.end()),
      dogs(dog_list.begin(), dog_list.end());
  for (const auto& d : dogs) CHECK(std::find(names.begin(), names.end(), d) != names.end());
  cd::PreprocessSpec spec;  // 224, stretch, [0,1]: the backbone's own input
  torch::NoGradGuard no_grad;
  for (int i = 1; i <= 4; ++i)
    for (std::string cls : {"cat", "dog"}) {
      std::string file = "tests/fixtures/photos/" + cls + "." + std::to_string(i) + ".jpg";
      at::Tensor x = cd::preprocess(cd::read_file(source_path(file)), spec).unsqueeze(0);
      int top = net->imagenet_logits(x).argmax(1).item<int>();
      INFO(file << " -> " << names[top]);
      CHECK((cls == "cat" ? cats : dogs).count(names[top]) == 1);
    }
}

TEST_CASE("the import reads the topology: 16 convs, BN epsilon 1e-3, slope 0.1", "[darknet]") {
  auto imported = cd::import_tfjs_darknet(source_path(k_darknet), cd::DarknetFeatures::k_pooled);
  const auto& p = imported.params;
  CHECK(p["bn_eps"].get<double>() == Approx(1e-3));
  CHECK(p["leaky"].get<double>() == Approx(0.1));
  CHECK(p["classes"] == 1000);
  int convs = 0, pools = 0;
  for (const auto& l : p["layers"]) (l["type"] == "conv" ? convs : pools)++;
  CHECK(convs == 15);  // plus the 1x1 ImageNet classifier
  CHECK(pools == 4);
  // 'same' pooling keeps odd sizes working: 150 -> 75 -> 38 -> 19 -> 10.
  cd::Network net = cd::build_network("darknet", 150, p);
  net->eval();
  torch::NoGradGuard no_grad;
  CHECK(net->embed(torch::zeros({1, 3, 150, 150})).sizes() == at::IntArrayRef({1, 128}));
  CHECK_THROWS_AS(cd::import_tfjs_darknet("/nonexistent"), cd::ModelError);
  // Four pools make five stages to fine-tune; the last holds the ImageNet conv.
  CHECK_THROWS_AS(net->freeze_all_but_last_stages(6), cd::UsageError);
  net->freeze_all_but_last_stages(1);
  auto params = net->named_parameters();
  CHECK_FALSE(params["features.0.weight"].requires_grad());
  CHECK(params["imagenet.weight"].requires_grad());
  CHECK(params["head.weight"].requires_grad());
}
