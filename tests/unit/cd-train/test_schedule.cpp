#include <catch2/catch.hpp>

#include "cd-train/schedule.h"

TEST_CASE("early stopping counts epochs without a new best and keeps the best epoch",
          "[schedule]") {
  cd::EarlyStopping early;
  early.patience = 2;
  CHECK(early.update(1, 0.50));
  CHECK(early.update(2, 0.40));
  CHECK_FALSE(early.update(3, 0.40));  // equal is not better
  CHECK(early.wait == 1);
  CHECK_FALSE(early.exhausted());
  CHECK_FALSE(early.update(4, 0.45));
  CHECK(early.exhausted());
  CHECK(early.best_epoch == 2);
  CHECK(early.best_loss == 0.40);
  CHECK(early.update(5, 0.30));  // a new best resets the count
  CHECK(early.wait == 0);
  CHECK(early.best_epoch == 5);
}

TEST_CASE("plateau lowers the rate after more than patience flat epochs, down to min_lr",
          "[schedule]") {
  cd::Plateau plateau{/*factor=*/0.5, /*patience=*/1, /*min_lr=*/0.2};
  double lr = 1.0;
  lr = plateau.update(1.0, lr);
  CHECK(lr == 1.0);
  lr = plateau.update(1.0, lr);  // first flat epoch: within patience
  CHECK(lr == 1.0);
  lr = plateau.update(0.99995, lr);  // better by less than 1e-4 relative: still flat
  CHECK(lr == 0.5);
  CHECK(plateau.bad == 0);
  lr = plateau.update(0.5, lr);  // real improvement
  CHECK(plateau.best == 0.5);
  lr = plateau.update(0.6, lr);
  lr = plateau.update(0.6, lr);
  CHECK(lr == 0.25);
  lr = plateau.update(0.6, lr);
  lr = plateau.update(0.6, lr);
  CHECK(lr == 0.2);  // floor
}

TEST_CASE("plateau patience 0 lowers the rate on the first flat epoch", "[schedule]") {
  cd::Plateau plateau{0.1, 0, 0.0};
  CHECK(plateau.update(1.0, 1.0) == 1.0);
  CHECK(plateau.update(2.0, 1.0) == Approx(0.1));
}

TEST_CASE("stop reasons round-trip through their names", "[schedule]") {
  for (auto r : {cd::StopReason::k_running, cd::StopReason::k_epochs,
                 cd::StopReason::k_early_stopping, cd::StopReason::k_time_budget})
    CHECK(cd::parse_stop_reason(cd::to_string(r)) == r);
  CHECK(cd::to_string(cd::StopReason::k_early_stopping) == "early_stopping");
  CHECK(cd::parse_stop_reason("nonsense") == cd::StopReason::k_running);
}
