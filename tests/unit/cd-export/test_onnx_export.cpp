#include "catch_torch.h"

#include <opencv2/dnn.hpp>

#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>

#include "cd-export/onnx_export.h"
#include "domain/image.h"
#include "helpers.h"
#include "nn/classifier.h"
#include "nn/darknet_import.h"
#include "nn/efficientnet.h"
#include "nn/image_tensor.h"
#include "nn/nets.h"
#include "nn/weights.h"
#include "runtime/predictor.h"
#include "util/atomic_file.h"
#include "util/errors.h"

// CD_NO_ONNX_PARITY (CATDOG_ONNX_PARITY=OFF, the TSan tree) leaves out the
// parity case: seven single-threaded exports through three runtimes.
#ifndef CD_NO_ONNX_PARITY

using cd::test::source_path;

namespace {

struct Case {
  std::string architecture;
  int size;
  cd::Normalization norm;
  std::string features;  // for the pretrained backbones
  bool tta;
  int second = 0;                    // efficientnet-lite: model.second_input_size
  std::string second_backbone = "";  // efficientnet-lite: model.second_backbone
  int second_backbone_size = 0;
};

// A model file for the case: pretrained backbones get their ImageNet
// weights, and every head a small random one, so P(dog) spreads over (0, 1).
std::string write_model(const cd::test::TempDir& dir, const Case& c) {
  nlohmann::json params = nlohmann::json::object();
  std::string weights;
  if (c.architecture == "darknet") {
    auto imported = cd::import_tfjs_darknet(source_path("data/pretrained/darknet-tiny-imagenet"),
                                            cd::parse_darknet_features(c.features));
    params = imported.params;
    weights = imported.weights;
  } else if (cd::is_efficientnet_lite(c.architecture)) {
    auto imported = cd::import_efficientnet_lite(
        source_path("data/pretrained/" + c.architecture), c.architecture,
        cd::parse_darknet_features(c.features),
        c.second > 0 ? std::vector<int>{c.second} : std::vector<int>{},
        c.second_backbone.empty()
            ? cd::SecondBackbone{}
            : cd::SecondBackbone{source_path("data/pretrained/" + c.second_backbone),
                                 c.second_backbone, c.second_backbone_size});
    params = imported.params;
    weights = imported.weights;
  }
  cd::Network net = cd::build_network(c.architecture, c.size, params);
  if (!weights.empty()) cd::deserialize_module(*net, weights, "import");
  {
    torch::NoGradGuard no_grad;
    at::manual_seed(7);
    double scale = weights.empty() ? 2.0 : 0.02;  // features from scratch are small
    for (auto& p : net->head_parameters()) p.normal_(0.0, p.dim() == 2 ? scale : 0.1);
  }
  cd::ModelMeta meta;
  meta.architecture = c.architecture;
  meta.arch_params = params;
  meta.preprocess = {c.size, cd::ResizePolicy::k_stretch, c.norm};
  meta.tta_flip = c.tta;
  meta.created = cd::utc_now_iso8601();
  meta.data_fingerprint = "fixture";
  std::string path = dir.file(c.architecture + ".cdm");
  cd::write_file_atomic(path, cd::pack_model(meta, cd::serialize_module(*net), path));
  return path;
}

at::Tensor fixture_batch(const cd::PreprocessSpec& spec) {
  std::vector<at::Tensor> images;
  for (std::string cls : {"cat", "dog"})
    for (int i = 1; i <= 4; ++i)
      images.push_back(cd::preprocess(cd::read_file(source_path("tests/fixtures/photos/" + cls +
                                                                "." + std::to_string(i) + ".jpg")),
                                      spec));
  return at::stack(images).contiguous();
}

std::vector<float> opencv_dnn(const std::string& onnx, const at::Tensor& x) {
  cv::setNumThreads(1);  // OpenCV's own pool would run outside the sanitizers
  cv::dnn::Net net = cv::dnn::readNetFromONNX(onnx);
  int dims[4] = {static_cast<int>(x.size(0)), 3, static_cast<int>(x.size(2)),
                 static_cast<int>(x.size(3))};
  cv::Mat blob(4, dims, CV_32F, x.data_ptr<float>());
  net.setInput(blob, "input");
  cv::Mat out = net.forward("p_dog");
  return std::vector<float>(out.ptr<float>(), out.ptr<float>() + out.total());
}

nlohmann::json onnx_runtime(const cd::test::TempDir& dir, const std::string& onnx,
                            const at::Tensor& x) {
  std::string inputs = dir.file("inputs.f32");
  cd::write_file_atomic(inputs, std::string(static_cast<const char*>(x.data_ptr()),
                                            static_cast<std::size_t>(x.numel()) * 4));
  std::string cmd = source_path(".venv/bin/python") + " " +
                    source_path("tests/unit/onnx_check.py") + " " + onnx + " " + inputs + " " +
                    std::to_string(x.size(0)) + " " + std::to_string(x.size(2));
  std::string out;
  FILE* pipe = ::popen(cmd.c_str(), "r");
  REQUIRE(pipe);
  char buf[4096];
  while (std::size_t n = std::fread(buf, 1, sizeof buf, pipe)) out.append(buf, n);
  INFO(cmd);
  REQUIRE(::pclose(pipe) == 0);  // onnx.checker's full check passed and ONNX Runtime ran
  return nlohmann::json::parse(out);
}

// Exports each case and runs the file through OpenCV DNN, ONNX Runtime and
// catdog's oneDNN runtime beside LibTorch, and the model file's own graph
// through catdog's runtime.
void check_parity(const std::vector<Case>& cases) {
  for (const auto& c : cases) {
    INFO(c.architecture << " " << c.features << (c.tta ? " with test-time flip" : "")
                        << (c.second > 0 ? " and a second look" : "")
                        << (c.second_backbone.empty() ? "" : " beside " + c.second_backbone));
    cd::test::TempDir dir;
    std::string model = write_model(dir, c);
    std::string onnx = dir.file("model.onnx");
    cd::ExportSummary summary = cd::export_onnx(model, onnx);
    CHECK(summary.tta_in_graph == c.tta);
    // Every initializer's data starts on a 64-byte boundary, so the runtime
    // reads it in place from the mapped file.
    std::vector<std::size_t> at = cd::onnx_raw_data_offsets(cd::read_file(onnx));
    CHECK(at.size() == summary.initializers);
    for (std::size_t offset : at) CHECK(offset % 64 == 0);
    if (c.architecture == "efficientnet-lite2") {
      // The head folds the ImageNet layer in (1000 x 1280 floats, 5.1 MB):
      // the file holds less than the network's 6.15M weights.
      CHECK(summary.bytes < 6'150'000 * 4 - 5'000'000);
    }
    auto classifier = cd::load_classifier(model);
    at::Tensor x = fixture_batch(classifier->meta().preprocess);
    std::vector<float> torch_p = classifier->predict(x);
    auto [lo, hi] = std::minmax_element(torch_p.begin(), torch_p.end());
    CHECK(*hi - *lo > 0.01f);  // the comparison means something

    std::vector<float> cv_p = opencv_dnn(onnx, x);
    nlohmann::json ort = onnx_runtime(dir, onnx, x);
    std::vector<float> ort_p = ort.at("p").get<std::vector<float>>();
    // Ours: catdog's oneDNN runtime on the exported graph, and on the model
    // file's own graph (test-time flip done by the runtime), without LibTorch.
    auto ours_onnx = cd::open_onnx_predictor(onnx, 1);
    std::vector<float> ours_p = ours_onnx->predict(x.data_ptr<float>(), x.size(0));
    auto ours_cdm = cd::open_predictor(model, {"cpu", 1, 0});
    CHECK(ours_onnx->runtime() == "onednn");
    CHECK(ours_cdm->runtime() == "onednn");
    std::vector<float> cdm_p = ours_cdm->predict(x.data_ptr<float>(), x.size(0));
    REQUIRE(cv_p.size() == torch_p.size());
    REQUIRE(ort_p.size() == torch_p.size());
    REQUIRE(ours_p.size() == torch_p.size());
    REQUIRE(cdm_p.size() == torch_p.size());
    for (std::size_t i = 0; i < torch_p.size(); ++i) {
      INFO("image " << i << ": LibTorch " << torch_p[i] << ", OpenCV DNN " << cv_p[i]
                    << ", ONNX Runtime " << ort_p[i] << ", catdog's runtime on the .onnx "
                    << ours_p[i] << " and on the .cdm " << cdm_p[i]);
      CHECK(std::abs(cv_p[i] - torch_p[i]) <= 1e-4f);
      CHECK(std::abs(ort_p[i] - torch_p[i]) <= 1e-4f);
      CHECK(std::abs(ours_p[i] - torch_p[i]) <= 1e-4f);
      CHECK(std::abs(cdm_p[i] - torch_p[i]) <= 1e-4f);
    }
    CHECK(ort.at("opset") == 10);
    const auto& md = ort.at("metadata");
    CHECK(md.at("catdog.architecture") == c.architecture);
    CHECK(md.at("catdog.input_size") == std::to_string(c.size));
    CHECK(md.at("catdog.normalization") == cd::to_string(c.norm));
    CHECK(md.at("catdog.resize") == "stretch");
    CHECK(md.at("catdog.classes") == "cat,dog");
    CHECK(md.at("catdog.threshold") == "0.5");
    CHECK(md.at("catdog.tta_flip") == (c.tta ? "in-graph" : "off"));
    CHECK(md.at("catdog.data_fingerprint") == "fixture");
    CHECK(md.at("catdog.model_version").get<std::string>().size() == 12);
  }
}

}  // namespace

// Two test cases, so that CTest (and the sanitizer trees' shards) run the two
// halves at once.
TEST_CASE(
    "catdog's oneDNN runtime, ONNX Runtime and OpenCV DNN give LibTorch's P(dog): "
    "baseline, compact, darknet and Lite0",
    "[export]") {
  check_parity({
      {"baseline", 64, cd::Normalization::k_unit, "", false},
      {"compact", 64, cd::Normalization::k_imagenet, "", true},
      {"darknet", 96, cd::Normalization::k_unit, "rich", false},
      {"darknet", 96, cd::Normalization::k_unit, "both", true},
      {"darknet", 96, cd::Normalization::k_unit, "rich-max", false},
      {"efficientnet-lite0", 224, cd::Normalization::k_signed, "rich-max", true},
  });
}

TEST_CASE(
    "catdog's oneDNN runtime, ONNX Runtime and OpenCV DNN give LibTorch's P(dog): "
    "Lite1, Lite2, a second look and a second backbone",
    "[export]") {
  check_parity({
      {"efficientnet-lite1", 240, cd::Normalization::k_signed, "pooled", false},
      {"efficientnet-lite2", 260, cd::Normalization::k_signed, "both", false},
      // A second look at the photo shrunk to 160 (the graph's resize: Transposes and 1x1 Convs).
      {"efficientnet-lite0", 224, cd::Normalization::k_signed, "rich", true, 160},
      // A second backbone (Lite1) on the photo shrunk to 128, and one at the same side.
      {"efficientnet-lite0", 160, cd::Normalization::k_signed, "rich", false, 0,
       "efficientnet-lite1", 128},
      {"efficientnet-lite0", 128, cd::Normalization::k_signed, "pooled", false, 0,
       "efficientnet-lite1", 128},
  });
}
#endif  // CD_NO_ONNX_PARITY

TEST_CASE("export refuses what is not a model file", "[export]") {
  cd::test::TempDir dir;
  cd::write_file_atomic(dir.file("x.cdm"), "not a model");
  CHECK_THROWS_AS(cd::export_onnx(dir.file("x.cdm"), dir.file("x.onnx")), cd::ModelError);
  CHECK_FALSE(std::ifstream(dir.file("x.onnx")).good());
}
