// Binary classification metrics with dog as the positive class: the numbers
// cd-eval reports and the ROC / precision-recall curves DVC plots.
#pragma once

#include <cstddef>
#include <vector>

namespace cd {

struct BinaryMetrics {
  double accuracy = 0, precision = 0, recall = 0, f1 = 0;
  double roc_auc = 0;  // NaN when only one class is present
  double log_loss = 0;
  std::size_t n = 0, tp = 0, fp = 0, tn = 0, fn = 0;
};

// labels: 0 or 1; scores: P(positive). Predicted positive when score >= threshold.
BinaryMetrics compute_metrics(const std::vector<int>& labels, const std::vector<double>& scores,
                              double threshold = 0.5);

struct CurvePoint {
  double x = 0, y = 0, threshold = 0;  // ROC: x=fpr, y=tpr; PR: x=recall, y=precision
};

// Tied scores form one point, so the curve never depends on input order.
// The first point is (0,0) at threshold 1; empty when a class is missing.
std::vector<CurvePoint> roc_curve(const std::vector<int>& labels,
                                  const std::vector<double>& scores);
std::vector<CurvePoint> pr_curve(const std::vector<int>& labels, const std::vector<double>& scores);

// Area under the ROC curve by the trapezoid rule; NaN with one class only.
double roc_auc(const std::vector<int>& labels, const std::vector<double>& scores);

}  // namespace cd
