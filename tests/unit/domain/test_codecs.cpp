// catdog's own decoders (codecs.cpp: libjpeg-turbo, libpng, libwebp, and BMP
// without a library), each against OpenCV's imgcodecs on the same bytes, and
// each within its CPU budget.
#include <catch2/catch.hpp>

#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include "domain/codecs.h"
#include "domain/image.h"
#include "opencv_reference.h"
#include "util/errors.h"

using cd::test::decoded;
using cd::test::fixture;
using cd::test::mat;
using cd::test::resized;

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
