#include "catch_torch.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>

#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include "domain/image.h"
#include "helpers.h"
#include "nn/image_tensor.h"
#include "opencv_reference.h"
#include "util/atomic_file.h"
#include "util/errors.h"

using cd::test::decoded;
using cd::test::fixture;
using cd::test::mat;
using cd::test::resized;
using cd::test::rgb_of;
using cd::test::source_path;

namespace {

// The golden file pins preprocess() for a committed photo: shape line, then
// every value. CD_UPDATE_GOLDEN=1 rewrites it after a deliberate change.
void check_golden(const at::Tensor& t, const std::string& golden_rel) {
  std::string path = source_path(golden_rel);
  if (std::getenv("CD_UPDATE_GOLDEN")) {
    std::ostringstream out;
    out << t.size(0) << ' ' << t.size(1) << ' ' << t.size(2) << '\n';
    auto flat = t.contiguous().view({-1});
    auto* p = flat.data_ptr<float>();
    for (int64_t i = 0; i < flat.numel(); ++i) out << p[i] << '\n';
    cd::write_file_atomic(path, out.str());
  }
  std::ifstream in(path);
  REQUIRE(in);
  int64_t c, h, w;
  in >> c >> h >> w;
  REQUIRE(t.sizes() == at::IntArrayRef({c, h, w}));
  auto flat = t.contiguous().view({-1});
  auto* p = flat.data_ptr<float>();
  double worst = 0;
  for (int64_t i = 0; i < flat.numel(); ++i) {
    double expected;
    in >> expected;
    worst = std::max(worst, std::abs(expected - p[i]));
  }
  CHECK(worst < 1e-5);
}

}  // namespace

TEST_CASE("preprocess output is pinned by a golden file", "[image]") {
  cd::PreprocessSpec spec;
  spec.size = 32;
  at::Tensor t = cd::preprocess(fixture("photos/cat.1.jpg"), spec);
  CHECK(t.dtype() == at::kFloat);
  CHECK(t.min().item<float>() >= 0.0f);
  CHECK(t.max().item<float>() <= 1.0f);
  check_golden(t, "tests/fixtures/golden/cat.1.stretch32.txt");
}

TEST_CASE("channels come out in RGB order", "[image]") {
  // A pure red PNG, encoded by OpenCV's writer in BGR order.
  cv::Mat bgr(40, 40, CV_8UC3, cv::Scalar(0, 0, 255));
  std::vector<uchar> buf;
  cv::imencode(".png", bgr, buf);
  cd::PreprocessSpec spec;
  spec.size = 8;
  at::Tensor t = cd::preprocess(std::string(buf.begin(), buf.end()), spec);
  CHECK(t[0].mean().item<float>() == Approx(1.0f));
  CHECK(t[2].mean().item<float>() == Approx(0.0f));
}

TEST_CASE("every supported kind of input decodes to 3-channel 8-bit RGB", "[image]") {
  for (const char* name : {"formats/cat-png.png", "formats/dog-gray.jpg", "formats/cat-cmyk.jpg",
                           "formats/dog-rgba.png", "photos/dog.1.jpg"}) {
    INFO(name);
    cv::Mat rgb = decoded(fixture(name));
    CHECK(rgb.type() == CV_8UC3);
    CHECK(rgb.cols > 100);
  }
  // CMYK decoding keeps colours: the CMYK copy of cat.3 matches the original closely.
  cv::Mat a = resized(decoded(fixture("photos/cat.3.jpg")), 32, cd::ResizePolicy::k_stretch);
  cv::Mat b = resized(decoded(fixture("formats/cat-cmyk.jpg")), 32, cd::ResizePolicy::k_stretch);
  CHECK(cv::norm(a, b, cv::NORM_L1) / (32 * 32 * 3) < 12.0);
}

TEST_CASE("bad bytes raise DataError with the reason", "[image]") {
  auto reason = [](const std::string& bytes) {
    try {
      cd::decode_rgb(bytes);
    } catch (const cd::DataError& e) {
      return std::string(e.what());
    }
    return std::string("decoded");
  };
  CHECK(reason("") == "empty file (0 bytes)");
  CHECK(reason("hello, I am text") == "not a decodable image (expected JPEG, PNG, BMP or WebP)");
  CHECK(reason(fixture("formats/truncated.jpg")) == "truncated JPEG (no end-of-image marker)");
  std::string png = fixture("formats/cat-png.png");
  CHECK(reason(png.substr(0, png.size() / 2)) == "truncated PNG (no IEND chunk)");
  CHECK_THROWS_WITH(cd::read_rgb("/nonexistent.jpg"), Catch::Contains("/nonexistent.jpg"));
}

TEST_CASE("resize policies give the requested square", "[image]") {
  cv::Mat wide(100, 300, CV_8UC3, cv::Scalar(10, 200, 30));
  for (auto policy : {cd::ResizePolicy::k_stretch, cd::ResizePolicy::k_center_crop,
                      cd::ResizePolicy::k_letterbox}) {
    cv::Mat out = resized(wide, 64, policy);
    CHECK(out.rows == 64);
    CHECK(out.cols == 64);
  }
  // Letterboxing pads above and below a wide image with mid grey.
  cv::Mat boxed = resized(wide, 60, cd::ResizePolicy::k_letterbox);
  CHECK(boxed.at<cv::Vec3b>(0, 30) == cv::Vec3b(128, 128, 128));
  CHECK(boxed.at<cv::Vec3b>(30, 30) == cv::Vec3b(10, 200, 30));
  CHECK(cd::parse_resize_policy("center-crop") == cd::ResizePolicy::k_center_crop);
  CHECK_THROWS_AS(cd::parse_resize_policy("squash"), cd::UsageError);
}

TEST_CASE("ImageNet normalisation subtracts the mean and divides by the std", "[image]") {
  cv::Mat grey(4, 4, CV_8UC3, cv::Scalar(255, 255, 255));
  at::Tensor t = cd::to_tensor(rgb_of(grey), cd::Normalization::k_imagenet);
  CHECK(t[0][0][0].item<float>() == Approx((1.0 - 0.485) / 0.229));
  CHECK(t[2][3][3].item<float>() == Approx((1.0 - 0.406) / 0.225));
}

TEST_CASE("one extension list for every tool, in any case", "[image]") {
  for (const char* ok : {"a/b.jpg", "x.JPEG", "y.Png", "z.bmp", "w.webp"})
    CHECK(cd::has_image_extension(ok));
  for (const char* no : {"notes.txt", "jpg", "a.jpg.bak", "dir/"})
    CHECK_FALSE(cd::has_image_extension(no));
}

TEST_CASE("image headers give format and size without decoding", "[image]") {
  // Encoded here by OpenCV, an independent writer of each format.
  cv::Mat img(37, 53, CV_8UC3, cv::Scalar(10, 200, 30));
  for (const char* ext : {".png", ".bmp", ".webp", ".jpg"}) {
    std::vector<unsigned char> buf;
    REQUIRE(cv::imencode(ext, img, buf));
    auto header =
        cd::read_image_header(std::string_view(reinterpret_cast<char*>(buf.data()), buf.size()));
    INFO(ext);
    REQUIRE(header);
    CHECK(header->width == 53);
    CHECK(header->height == 37);
  }
  std::vector<unsigned char> lossless;
  REQUIRE(cv::imencode(".webp", img, lossless, {cv::IMWRITE_WEBP_QUALITY, 101}));  // VP8L
  auto header = cd::read_image_header(
      std::string_view(reinterpret_cast<char*>(lossless.data()), lossless.size()));
  REQUIRE(header);
  CHECK((header->width == 53 && header->height == 37));
  auto fixture_header = cd::read_image_header(fixture("photos/cat.1.jpg"));
  REQUIRE(fixture_header);
  CHECK(fixture_header->format == "jpeg");
  CHECK_FALSE(cd::read_image_header("GIF89a......................"));
  CHECK_FALSE(cd::read_image_header("\xFF\xD8\xFF"));
}

TEST_CASE("an image whose header declares more pixels than the budget is refused before decoding",
          "[image]") {
  std::string png = fixture("formats/cat-png.png");
  auto header = cd::read_image_header(png);
  REQUIRE(header);
  // The same bytes with a header claiming 30000 x 30000: decoding would need 2.7 GB.
  std::string bomb = png;
  for (int i = 0; i < 2; ++i) {
    std::uint32_t v = 30000;
    for (int b = 0; b < 4; ++b)
      bomb[16 + 4 * i + b] = static_cast<char>((v >> (24 - 8 * b)) & 0xFF);
  }
  CHECK_THROWS_AS(cd::decode_rgb(bomb), cd::BudgetError);
  CHECK_THROWS_WITH(cd::decode_rgb(bomb), Catch::Contains("30000x30000 pixels, over the budget"));
  auto saved = cd::input_budget();
  cd::input_budget().max_pixels = std::uint64_t{header->width} * header->height - 1;
  CHECK_THROWS_AS(cd::decode_rgb(png), cd::BudgetError);
  cd::input_budget().max_pixels = std::uint64_t{header->width} * header->height;
  CHECK_NOTHROW(cd::decode_rgb(png));
  cd::input_budget() = saved;
}

TEST_CASE("image files are read within the byte budget, and never from a device", "[image]") {
  cd::test::TempDir dir;
  std::string path = dir.file("big.jpg");
  cd::write_file_atomic(path, fixture("photos/cat.1.jpg") + std::string(4096, '\0'));
  auto saved = cd::input_budget();
  cd::input_budget().max_file_bytes = 4096;
  CHECK_THROWS_AS(cd::read_image_bytes(path), cd::BudgetError);
  cd::input_budget() = saved;
  CHECK_NOTHROW(cd::read_image_bytes(path));
  CHECK_THROWS_WITH(cd::read_image_bytes("/dev/zero"), Catch::Contains("not a regular file"));
}

TEST_CASE("resizing matches OpenCV's INTER_AREA and INTER_LINEAR within one level", "[image]") {
  // Both sides shrinking: area averaging (integer and fractional factors);
  // otherwise bilinear, a side growing while the other shrinks included.
  cv::Mat photo = decoded(fixture("photos/dog.1.jpg"));
  cv::Mat noise(37, 53, CV_8UC3);
  cv::randu(noise, 0, 256);
  struct Case {
    const cv::Mat* src;
    int w, h;
  } cases[] = {{&photo, 64, 64},  {&photo, 300, 300}, {&photo, photo.cols / 2, photo.rows / 3},
               {&noise, 24, 24},  {&noise, 53, 12},   {&noise, 224, 224},
               {&noise, 100, 20}, {&noise, 1, 1},     {&photo, photo.cols, photo.rows}};
  for (const Case& c : cases) {
    CAPTURE(c.src->cols, c.src->rows, c.w, c.h);
    bool shrinking = c.w <= c.src->cols && c.h <= c.src->rows;
    cv::Mat theirs;
    cv::resize(*c.src, theirs, cv::Size(c.w, c.h), 0, 0,
               shrinking ? cv::INTER_AREA : cv::INTER_LINEAR);
    cv::Mat ours = mat(cd::resized(rgb_of(*c.src), c.w, c.h));
    REQUIRE(ours.size() == theirs.size());
    CHECK(cv::norm(ours, theirs, cv::NORM_INF) <= 1);
    cv::Mat diff;
    cv::absdiff(ours, theirs, diff);
    CHECK(cv::mean(diff.reshape(1))[0] < 0.1);
  }
  // A one-pixel source grows into a flat image.
  cv::Mat dot(1, 1, CV_8UC3, cv::Scalar(7, 8, 9));
  CHECK(cv::norm(mat(cd::resized(rgb_of(dot), 5, 3)), cv::Mat(3, 5, CV_8UC3, cv::Scalar(7, 8, 9)),
                 cv::NORM_INF) == 0);
}
