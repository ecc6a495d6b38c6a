#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include <cmath>
#include <cstdio>

#include "cd-eval/evaluate.h"
#include "util/atomic_file.h"
#include "util/errors.h"

namespace cd {

namespace {

const cv::Scalar k_ink(40, 40, 40);
const int k_font = cv::FONT_HERSHEY_SIMPLEX;

void save_png(const std::string& path, const cv::Mat& bgr) {
  std::vector<uchar> bytes;
  if (!cv::imencode(".png", bgr, bytes)) throw IoError("cannot encode " + path);
  write_file_atomic(path, std::string(bytes.begin(), bytes.end()));
}

void centered(cv::Mat& img, const std::string& text, cv::Point center, double scale,
              cv::Scalar colour, int thick) {
  int base = 0;
  cv::Size size = cv::getTextSize(text, k_font, scale, thick, &base);
  cv::putText(img, text, {center.x - size.width / 2, center.y + size.height / 2}, k_font, scale,
              colour, thick, cv::LINE_AA);
}

}  // namespace

void render_confusion_png(const std::string& path, const BinaryMetrics& m) {
  cv::Mat img(480, 520, CV_8UC3, cv::Scalar(255, 255, 255));
  centered(img, "Confusion matrix (test split)", {260, 30}, 0.7, k_ink, 2);
  const std::size_t cells[2][2] = {{m.tn, m.fp}, {m.fn, m.tp}};
  const std::vector<std::string>& names = class_names();
  double total = std::max<std::size_t>(1, m.n);
  for (int r = 0; r < 2; ++r)
    for (int c = 0; c < 2; ++c) {
      double share = cells[r][c] / total;
      int shade = static_cast<int>(255 - 180 * std::min(1.0, share * 2));
      cv::Rect cell(140 + c * 170, 90 + r * 150, 170, 150);
      cv::rectangle(img, cell,
                    r == c ? cv::Scalar(shade, 255, shade) : cv::Scalar(shade, shade, 255),
                    cv::FILLED);
      cv::rectangle(img, cell, k_ink, 1);
      char pct[32];
      std::snprintf(pct, sizeof pct, "%.1f%%", share * 100);
      centered(img, std::to_string(cells[r][c]), {cell.x + 85, cell.y + 60}, 1.1, k_ink, 2);
      centered(img, pct, {cell.x + 85, cell.y + 105}, 0.6, k_ink, 1);
    }
  for (int i = 0; i < 2; ++i) {
    centered(img, names[i], {225 + i * 170, 75}, 0.7, k_ink, 2);
    centered(img, names[i], {100, 165 + i * 150}, 0.7, k_ink, 2);
  }
  centered(img, "predicted", {310, 415}, 0.6, k_ink, 1);
  centered(img, "actual", {45, 240}, 0.6, k_ink, 1);
  char summary[96];
  std::snprintf(summary, sizeof summary, "n=%zu  accuracy %.2f%%", m.n, m.accuracy * 100);
  centered(img, summary, {260, 455}, 0.6, k_ink, 1);
  save_png(path, img);
}

void render_roc_png(const std::string& path, const std::vector<CurvePoint>& roc, double auc) {
  const int w = 520, h = 520, left = 70, top = 50, side = 400;
  cv::Mat img(h, w, CV_8UC3, cv::Scalar(255, 255, 255));
  auto at = [&](double x, double y) {
    return cv::Point(left + static_cast<int>(std::lround(x * side)),
                     top + side - static_cast<int>(std::lround(y * side)));
  };
  for (int i = 0; i <= 10; ++i) {
    double v = i / 10.0;
    cv::line(img, at(v, 0), at(v, 1), cv::Scalar(230, 230, 230), 1);
    cv::line(img, at(0, v), at(1, v), cv::Scalar(230, 230, 230), 1);
    if (i % 2 == 0) {
      char label[8];
      std::snprintf(label, sizeof label, "%.1f", v);
      centered(img, label, at(v, 0) + cv::Point(0, 18), 0.45, k_ink, 1);
      centered(img, label, at(0, v) - cv::Point(25, 0), 0.45, k_ink, 1);
    }
  }
  cv::rectangle(img, at(0, 1), at(1, 0), k_ink, 1);
  cv::line(img, at(0, 0), at(1, 1), cv::Scalar(160, 160, 160), 1, cv::LINE_AA);
  for (std::size_t i = 1; i < roc.size(); ++i)
    cv::line(img, at(roc[i - 1].x, roc[i - 1].y), at(roc[i].x, roc[i].y), cv::Scalar(180, 90, 20),
             2, cv::LINE_AA);
  char title[64];
  if (std::isfinite(auc))
    std::snprintf(title, sizeof title, "ROC curve (test split), AUC = %.4f", auc);
  else
    std::snprintf(title, sizeof title, "ROC curve undefined: one class only");
  centered(img, title, {w / 2, 25}, 0.6, k_ink, 2);
  centered(img, "false positive rate (cats called dogs)", {left + side / 2, top + side + 45}, 0.5,
           k_ink, 1);
  cv::Mat label(30, side, CV_8UC3, cv::Scalar(255, 255, 255));
  centered(label, "true positive rate (dogs found)", {side / 2, 15}, 0.5, k_ink, 1);
  cv::Mat rotated;
  cv::rotate(label, rotated, cv::ROTATE_90_COUNTERCLOCKWISE);
  rotated.copyTo(img(cv::Rect(5, top, 30, side)));
  save_png(path, img);
}

}  // namespace cd
