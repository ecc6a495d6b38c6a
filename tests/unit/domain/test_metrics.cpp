#include <catch2/catch.hpp>
#include <cmath>

#include "domain/metrics.h"

TEST_CASE("a perfect classifier scores 1 everywhere and log loss near 0", "[metrics]") {
  auto m = cd::compute_metrics({0, 0, 1, 1}, {0.1, 0.2, 0.8, 0.9});
  CHECK(m.accuracy == 1.0);
  CHECK(m.precision == 1.0);
  CHECK(m.recall == 1.0);
  CHECK(m.f1 == 1.0);
  CHECK(m.roc_auc == 1.0);
  CHECK(m.tp == 2);
  CHECK(m.tn == 2);
  // -(ln .9 + ln .8 + ln .8 + ln .9) / 4
  CHECK(m.log_loss == Approx(-(2 * std::log(0.9) + 2 * std::log(0.8)) / 4));
}

TEST_CASE("an inverted classifier scores 0", "[metrics]") {
  auto m = cd::compute_metrics({0, 0, 1, 1}, {0.9, 0.8, 0.2, 0.1});
  CHECK(m.accuracy == 0.0);
  CHECK(m.precision == 0.0);
  CHECK(m.recall == 0.0);
  CHECK(m.f1 == 0.0);
  CHECK(m.roc_auc == 0.0);
  CHECK(m.fp == 2);
  CHECK(m.fn == 2);
}

TEST_CASE("hand-computed counts, precision, recall and F1", "[metrics]") {
  // labels:   1    1    1    0    0    0    0
  // scores:  .9   .6   .3   .7   .4   .2   .5   threshold .5
  auto m = cd::compute_metrics({1, 1, 1, 0, 0, 0, 0}, {0.9, 0.6, 0.3, 0.7, 0.4, 0.2, 0.5});
  CHECK(m.tp == 2);
  CHECK(m.fn == 1);
  CHECK(m.fp == 2);  // .7 and .5 (>= threshold)
  CHECK(m.tn == 2);
  CHECK(m.precision == Approx(0.5));
  CHECK(m.recall == Approx(2.0 / 3));
  CHECK(m.f1 == Approx(2 * 0.5 * (2.0 / 3) / (0.5 + 2.0 / 3)));
  CHECK(m.accuracy == Approx(4.0 / 7));
  // Pairs (pos, neg) ranked right: .9 beats all 4; .6 beats .4 .2 .5; .3 beats .2 -> 8 of 12.
  CHECK(m.roc_auc == Approx(8.0 / 12));
}

TEST_CASE("tied scores count half and make one curve point", "[metrics]") {
  CHECK(cd::roc_auc({0, 1}, {0.5, 0.5}) == Approx(0.5));
  CHECK(cd::roc_auc({0, 1, 1, 0}, {0.3, 0.7, 0.3, 0.1}) == Approx(0.875));
  auto curve = cd::roc_curve({0, 1, 0, 1}, {0.5, 0.5, 0.5, 0.5});
  REQUIRE(curve.size() == 2);
  CHECK(curve[1].x == 1.0);
  CHECK(curve[1].y == 1.0);
  // Order of equal scores does not matter.
  CHECK(cd::roc_auc({1, 0, 1, 0}, {0.5, 0.5, 0.9, 0.1}) ==
        cd::roc_auc({0, 1, 0, 1}, {0.5, 0.5, 0.1, 0.9}));
}

TEST_CASE("one class only: AUC undefined, curves empty, counts still right", "[metrics]") {
  auto m = cd::compute_metrics({1, 1, 1}, {0.9, 0.4, 0.8});
  CHECK(std::isnan(m.roc_auc));
  CHECK(m.tp == 2);
  CHECK(m.fn == 1);
  CHECK(m.precision == 1.0);
  CHECK(m.recall == Approx(2.0 / 3));
  CHECK(cd::roc_curve({0, 0}, {0.1, 0.2}).empty());
  CHECK(cd::pr_curve({0, 0}, {0.1, 0.2}).empty());
  auto none = cd::compute_metrics({0, 0}, {0.1, 0.2});
  CHECK(none.precision == 0.0);  // no positive predictions: defined as 0, not NaN
  CHECK(none.f1 == 0.0);
}

TEST_CASE("log loss clips certain mistakes instead of returning infinity", "[metrics]") {
  auto m = cd::compute_metrics({1, 0}, {0.0, 1.0});
  CHECK(std::isfinite(m.log_loss));
  CHECK(m.log_loss == Approx(-std::log(1e-15)));
}

TEST_CASE("the precision-recall curve starts at recall 0, precision 1", "[metrics]") {
  auto pr = cd::pr_curve({1, 0, 1}, {0.9, 0.8, 0.7});
  REQUIRE(pr.size() == 4);
  CHECK(pr[0].x == 0.0);
  CHECK(pr[0].y == 1.0);
  CHECK(pr[1].x == 0.5);
  CHECK(pr[1].y == 1.0);
  CHECK(pr[2].y == 0.5);
  CHECK(pr[3].x == 1.0);
  CHECK(pr[3].y == Approx(2.0 / 3));
}
