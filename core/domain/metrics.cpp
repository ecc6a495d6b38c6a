#include "domain/metrics.h"

#include <algorithm>
#include <cmath>
#include <numeric>

namespace cd {

namespace {

// Sorted by descending score; each group of equal scores becomes one step.
template <typename Visit>
void sweep(const std::vector<int>& labels, const std::vector<double>& scores, Visit visit) {
  std::vector<std::size_t> order(scores.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(),
                   [&](std::size_t a, std::size_t b) { return scores[a] > scores[b]; });
  std::size_t tp = 0, fp = 0;
  for (std::size_t i = 0; i < order.size();) {
    double s = scores[order[i]];
    while (i < order.size() && scores[order[i]] == s) {
      (labels[order[i]] ? tp : fp)++;
      ++i;
    }
    visit(tp, fp, s);
  }
}

}  // namespace

BinaryMetrics compute_metrics(const std::vector<int>& labels, const std::vector<double>& scores,
                              double threshold) {
  BinaryMetrics m;
  m.n = labels.size();
  double loss = 0;
  for (std::size_t i = 0; i < labels.size(); ++i) {
    bool predicted = scores[i] >= threshold;
    bool actual = labels[i] == 1;
    if (predicted && actual)
      ++m.tp;
    else if (predicted)
      ++m.fp;
    else if (actual)
      ++m.fn;
    else
      ++m.tn;
    double p = std::clamp(scores[i], 1e-15, 1 - 1e-15);
    loss -= actual ? std::log(p) : std::log(1 - p);
  }
  if (m.n == 0) return m;
  m.accuracy = static_cast<double>(m.tp + m.tn) / m.n;
  m.precision = m.tp + m.fp ? static_cast<double>(m.tp) / (m.tp + m.fp) : 0.0;
  m.recall = m.tp + m.fn ? static_cast<double>(m.tp) / (m.tp + m.fn) : 0.0;
  m.f1 = m.precision + m.recall > 0 ? 2 * m.precision * m.recall / (m.precision + m.recall) : 0.0;
  m.log_loss = loss / m.n;
  m.roc_auc = roc_auc(labels, scores);
  return m;
}

std::vector<CurvePoint> roc_curve(const std::vector<int>& labels,
                                  const std::vector<double>& scores) {
  std::size_t pos = std::count(labels.begin(), labels.end(), 1);
  std::size_t neg = labels.size() - pos;
  if (pos == 0 || neg == 0) return {};
  std::vector<CurvePoint> out{{0.0, 0.0, 1.0}};
  sweep(labels, scores, [&](std::size_t tp, std::size_t fp, double s) {
    out.push_back({static_cast<double>(fp) / neg, static_cast<double>(tp) / pos, s});
  });
  return out;
}

std::vector<CurvePoint> pr_curve(const std::vector<int>& labels,
                                 const std::vector<double>& scores) {
  std::size_t pos = std::count(labels.begin(), labels.end(), 1);
  if (pos == 0 || pos == labels.size()) return {};
  std::vector<CurvePoint> out{{0.0, 1.0, 1.0}};
  sweep(labels, scores, [&](std::size_t tp, std::size_t fp, double s) {
    out.push_back({static_cast<double>(tp) / pos, static_cast<double>(tp) / (tp + fp), s});
  });
  return out;
}

double roc_auc(const std::vector<int>& labels, const std::vector<double>& scores) {
  auto curve = roc_curve(labels, scores);
  if (curve.empty()) return NAN;
  double area = 0;
  for (std::size_t i = 1; i < curve.size(); ++i)
    area += (curve[i].x - curve[i - 1].x) * (curve[i].y + curve[i - 1].y) / 2;
  return area;
}

}  // namespace cd
