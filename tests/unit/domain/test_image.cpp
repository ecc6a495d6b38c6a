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
#include "util/atomic_file.h"
#include "util/errors.h"

using cd::test::source_path;

namespace {

std::string fixture(const std::string& rel) {
  return cd::read_file(source_path("tests/fixtures/" + rel));
}

// catdog's pixels as an OpenCV matrix (a copy), and back: OpenCV is the
// independent reference these tests compare with.
cv::Mat mat(const cd::RgbImage& rgb) {
  return cv::Mat(rgb.height(), rgb.width(), CV_8UC3, const_cast<unsigned char*>(rgb.data()))
      .clone();
}
cd::RgbImage rgb_of(const cv::Mat& m) {
  REQUIRE(m.type() == CV_8UC3);
  cd::RgbImage out(m.cols, m.rows);
  for (int y = 0; y < m.rows; ++y) std::memcpy(out.row(y), m.ptr(y), out.stride());
  return out;
}
cv::Mat decoded(std::string_view bytes, int min_side = 0) {
  return mat(cd::decode_rgb(bytes, min_side));
}
cv::Mat resized(const cv::Mat& m, int size, cd::ResizePolicy policy) {
  return mat(cd::resize_by_policy(rgb_of(m), size, policy));
}

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

TEST_CASE("PNG decodes through libpng to the same pixels as OpenCV's reader", "[image]") {
  cv::Mat gray16(20, 30, CV_16UC1), rgba(20, 30, CV_8UC4);
  cv::randu(gray16, 0, 65535);
  cv::randu(rgba, 0, 255);
  std::vector<std::string> inputs{fixture("formats/cat-png.png"), fixture("formats/dog-rgba.png"),
                                  fixture("formats/tiny-5x5.png")};
  for (const cv::Mat& m : {gray16, rgba}) {
    std::vector<unsigned char> buf;
    REQUIRE(cv::imencode(".png", m, buf));
    inputs.emplace_back(buf.begin(), buf.end());
  }
  for (const auto& bytes : inputs) {
    cv::Mat ours = decoded(bytes);
    cv::Mat bgr = cv::imdecode(
        cv::Mat(1, static_cast<int>(bytes.size()), CV_8UC1, const_cast<char*>(bytes.data())),
        cv::IMREAD_COLOR);
    cv::Mat theirs;
    cv::cvtColor(bgr, theirs, cv::COLOR_BGR2RGB);
    REQUIRE(ours.size() == theirs.size());
    CHECK(cv::norm(ours, theirs, cv::NORM_INF) == 0);
  }
  std::string png = fixture("formats/cat-png.png");
  CHECK_THROWS_WITH(cd::decode_rgb(png.substr(0, 60) + png.substr(png.size() - 12)),
                    Catch::StartsWith("not a decodable PNG"));
}

namespace {

cv::Mat opencv_rgb(const std::string& bytes) {  // the reference: OpenCV's imgcodecs
  cv::Mat bgr = cv::imdecode(
      cv::Mat(1, static_cast<int>(bytes.size()), CV_8UC1, const_cast<char*>(bytes.data())),
      cv::IMREAD_COLOR);
  cv::Mat rgb;
  if (!bgr.empty()) cv::cvtColor(bgr, rgb, cv::COLOR_BGR2RGB);
  return rgb;
}

std::string encoded(const cv::Mat& bgr, const std::string& ext, std::vector<int> params = {}) {
  std::vector<unsigned char> buf;
  REQUIRE(cv::imencode(ext, bgr, buf, params));
  return std::string(buf.begin(), buf.end());
}

// A JPEG with an APP1 Exif segment whose IFD0 holds Orientation = value.
std::string with_orientation(const std::string& jpeg, int value) {
  std::string tiff = std::string("MM\0*\0\0\0\x08\0\x01", 10) +
                     std::string("\x01\x12\0\x03\0\0\0\x01\0", 9) + static_cast<char>(value) +
                     std::string(2, '\0') + std::string(4, '\0');
  std::string app1 = "Exif" + std::string(2, '\0') + tiff;
  std::size_t length = app1.size() + 2;
  return jpeg.substr(0, 2) + "\xFF\xE1" + static_cast<char>(length >> 8) +
         static_cast<char>(length & 0xFF) + app1 + jpeg.substr(2);
}

void put_le(std::string& b, std::size_t at, std::uint32_t v, int bytes) {
  for (int i = 0; i < bytes; ++i) b[at + i] = static_cast<char>((v >> (8 * i)) & 0xFF);
}

// A BMP with a 40-byte header (or 52 with bit field masks), built by hand.
std::string bmp(int width, int height, int bpp, int compression, const std::string& palette,
                const std::string& pixels, std::vector<std::uint32_t> masks = {}) {
  std::size_t header = 14 + 40 + 4 * masks.size() + palette.size();
  std::string b(header, '\0');
  b[0] = 'B', b[1] = 'M';
  put_le(b, 2, static_cast<std::uint32_t>(header + pixels.size()), 4);
  put_le(b, 10, static_cast<std::uint32_t>(header), 4);
  put_le(b, 14, 40, 4);
  put_le(b, 18, static_cast<std::uint32_t>(width), 4);
  put_le(b, 22, static_cast<std::uint32_t>(height), 4);
  put_le(b, 26, 1, 2);
  put_le(b, 28, static_cast<std::uint32_t>(bpp), 2);
  put_le(b, 30, static_cast<std::uint32_t>(compression), 4);
  for (std::size_t i = 0; i < masks.size(); ++i) put_le(b, 54 + 4 * i, masks[i], 4);
  b.replace(54 + 4 * masks.size(), palette.size(), palette);
  return b + pixels;
}

}  // namespace

TEST_CASE("JPEG decodes through libjpeg-turbo to the same pixels as OpenCV's reader", "[image]") {
  std::vector<std::string> names{"formats/dog-gray.jpg", "formats/cat-cmyk.jpg"};
  for (std::string cls : {"cat", "dog"})
    for (int i = 1; i <= 4; ++i)
      names.push_back("photos/" + cls + "." + std::to_string(i) + ".jpg");
  for (const auto& name : names) {
    INFO(name);
    std::string bytes = fixture(name);
    cv::Mat ours = decoded(bytes), theirs = opencv_rgb(bytes);
    REQUIRE(ours.size() == theirs.size());
    CHECK(cv::norm(ours, theirs, cv::NORM_INF) == 0);
  }
}

TEST_CASE("every EXIF orientation comes out upright, as OpenCV turns it", "[image]") {
  std::string jpeg = fixture("photos/cat.1.jpg");
  cv::Mat upright = decoded(jpeg);
  for (int orientation = 1; orientation <= 8; ++orientation) {
    INFO("orientation " << orientation);
    std::string turned = with_orientation(jpeg, orientation);
    cv::Mat ours = decoded(turned);
    bool swapped = orientation >= 5;
    CHECK(ours.cols == (swapped ? upright.rows : upright.cols));
    REQUIRE(ours.size() == opencv_rgb(turned).size());
    CHECK(cv::norm(ours, opencv_rgb(turned), cv::NORM_INF) == 0);
    CHECK((orientation == 1) ==
          (ours.size() == upright.size() && cv::norm(ours, upright, cv::NORM_INF) == 0));
  }
}

TEST_CASE(
    "a JPEG much larger than the model's input decodes at a DCT scale, close to the full path",
    "[image]") {
  std::string jpeg = fixture("photos/dog.1.jpg");
  cv::Mat full = decoded(jpeg);
  cv::Mat scaled = decoded(jpeg, 64);
  // 327x499: the smallest of 1/2, 1/4, 1/8 that keeps both sides at least 64 is 1/4.
  CHECK(scaled.cols == (full.cols + 3) / 4);
  CHECK(scaled.rows == (full.rows + 3) / 4);
  CHECK(decoded(jpeg, (full.cols + 1) / 2 + 1).size() == full.size());             // under 2x: full
  CHECK(decoded(jpeg, 4 * std::max(full.cols, full.rows)).size() == full.size());  // never up
  // After the resize both paths take, the pixels differ by a few levels on average (measured:
  // 3.2 for stretch, 3.8 for center-crop, out of 255; a different low-pass, not a defect).
  for (auto policy : {cd::ResizePolicy::k_stretch, cd::ResizePolicy::k_center_crop}) {
    cv::Mat a = resized(full, 64, policy), b = resized(scaled, 64, policy);
    cv::Mat diff;
    cv::absdiff(a, b, diff);
    double mean = cv::mean(diff.reshape(1))[0];
    INFO("mean |difference| " << mean << ", max " << cv::norm(a, b, cv::NORM_INF));
    CHECK(mean < 5.0);
  }
  // EXIF turns apply after scaling too.
  cv::Mat turned = decoded(with_orientation(jpeg, 6), 64);
  CHECK(turned.cols == scaled.rows);
  CHECK(turned.rows == scaled.cols);
}

TEST_CASE("WebP decodes through libwebp to the same pixels as OpenCV's reader", "[image]") {
  cv::Mat photo;
  cv::cvtColor(decoded(fixture("photos/cat.2.jpg")), photo, cv::COLOR_RGB2BGR);
  cv::Mat rgba(23, 31, CV_8UC4);
  cv::randu(rgba, 0, 255);
  for (const std::string& bytes : {encoded(photo, ".webp", {cv::IMWRITE_WEBP_QUALITY, 80}),
                                   encoded(photo, ".webp", {cv::IMWRITE_WEBP_QUALITY, 101}),
                                   encoded(rgba, ".webp", {cv::IMWRITE_WEBP_QUALITY, 101})}) {
    cv::Mat ours = decoded(bytes), theirs = opencv_rgb(bytes);
    REQUIRE(ours.size() == theirs.size());
    CHECK(cv::norm(ours, theirs, cv::NORM_INF) == 0);
  }
  std::string webp = encoded(photo, ".webp");
  CHECK_THROWS_WITH(cd::decode_rgb(webp.substr(0, 40) + std::string(webp.size() - 40, '\0')),
                    Catch::StartsWith("not a decodable WebP"));
}

TEST_CASE("every decoder stops at the CPU budget with a CostError naming the setting", "[image]") {
  cv::Mat noise(1000, 1000, CV_8UC3);
  cv::randu(noise, 0, 255);
  auto saved = cd::input_budget();
  for (const char* ext : {".png", ".webp", ".bmp", ".jpg"}) {
    CAPTURE(ext);
    std::string bytes = encoded(noise, ext);
    cd::input_budget().max_decode_seconds = 1e-7;
    CHECK_THROWS_AS(cd::decode_rgb(bytes), cd::CostError);
    CHECK_THROWS_WITH(cd::decode_rgb(bytes), Catch::Contains("--max-decode-seconds"));
    cd::input_budget() = saved;
    CHECK(decoded(bytes).size() == cv::Size(1000, 1000));
  }
}

TEST_CASE("BMP decodes without OpenCV: 24-bit, palettes, bit fields, top-down", "[image]") {
  cv::Mat photo;
  cv::cvtColor(decoded(fixture("photos/cat.4.jpg")), photo, cv::COLOR_RGB2BGR);
  cv::Mat gray;
  cv::cvtColor(photo, gray, cv::COLOR_BGR2GRAY);
  for (const cv::Mat& m : {photo, gray}) {  // OpenCV writes 24-bit, and 8-bit with a gray palette
    std::string bytes = encoded(m, ".bmp");
    cv::Mat ours = decoded(bytes), theirs = opencv_rgb(bytes);
    REQUIRE(ours.size() == theirs.size());
    CHECK(cv::norm(ours, theirs, cv::NORM_INF) == 0);
  }
  // 2x2, 1 bit per pixel, palette black and (R,G,B) = (10,20,30); rows padded to 4 bytes,
  // bottom-up.
  std::string palette = std::string("\0\0\0\0", 4) + std::string("\x1e\x14\x0a\0", 4);
  cv::Mat one = decoded(bmp(2, 2, 1, 0, palette, std::string("\x40\0\0\0\x80\0\0\0", 8)));
  CHECK(one.at<cv::Vec3b>(0, 0) == cv::Vec3b(10, 20, 30));  // top row: second stored row, 0b10
  CHECK(one.at<cv::Vec3b>(0, 1) == cv::Vec3b(0, 0, 0));
  CHECK(one.at<cv::Vec3b>(1, 1) == cv::Vec3b(10, 20, 30));  // bottom row: first stored, 0b01
  // 16-bit 5-6-5 bit fields, top-down (negative height): pure red then pure blue.
  cv::Mat rgb565 =
      decoded(bmp(2, -1, 16, 3, "", std::string("\x00\xF8\x1F\x00", 4), {0xF800, 0x07E0, 0x001F}));
  CHECK(rgb565.at<cv::Vec3b>(0, 0) == cv::Vec3b(255, 0, 0));
  CHECK(rgb565.at<cv::Vec3b>(0, 1) == cv::Vec3b(0, 0, 255));
  // 32-bit BGRX.
  cv::Mat bgrx = decoded(bmp(1, 1, 32, 0, "", std::string("\x03\x02\x01\xFF", 4)));
  CHECK(bgrx.at<cv::Vec3b>(0, 0) == cv::Vec3b(1, 2, 3));
  CHECK_THROWS_WITH(cd::decode_rgb(bmp(2, 2, 8, 1, std::string(8, '\0'), std::string(8, '\0'))),
                    Catch::Contains("run-length encoded BMP is not supported"));
  CHECK_THROWS_WITH(cd::decode_rgb(bmp(64, 64, 24, 0, "", std::string(100, '\0'))),
                    "not a decodable BMP (pixel data cut short)");
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
