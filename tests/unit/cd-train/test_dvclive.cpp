#include <catch2/catch.hpp>

#include <filesystem>
#include <nlohmann/json.hpp>

#include "cd-train/dvclive.h"
#include "helpers.h"
#include "util/atomic_file.h"

TEST_CASE("DVCLive files hold the last epoch and one TSV row per epoch", "[dvclive]") {
  cd::test::TempDir dir;
  std::vector<cd::EpochRecord> history{{1, 1000, 0.6, 0.7, 0.5, 0.75, 1e-3, 1},
                                       {2, 2000, 0.4, 0.8, 0.45, 0.8, 5e-4, 1}};
  cd::DvcLiveObserver live(dir.path());
  live.on_epoch(history.back(), history);
  auto m = nlohmann::json::parse(cd::read_file(dir.file("metrics.json")));
  CHECK(m["step"] == 1);
  CHECK(m["val"]["loss"] == 0.45);
  CHECK(m["lr"] == 5e-4);
  CHECK(cd::read_file(dir.file("plots/metrics/train/loss.tsv")) ==
        "timestamp\tstep\tloss\n1000\t0\t0.59999999999999998\n2000\t1\t0.40000000000000002\n");
  CHECK(
      cd::read_file(dir.file("plots/metrics/val/acc.tsv")).find("2000\t1\t0.80000000000000004\n") !=
      std::string::npos);
  CHECK(std::filesystem::exists(dir.file("plots/metrics/lr.tsv")));
}

TEST_CASE("a failed run and an empty history write nothing", "[dvclive]") {
  cd::test::TempDir dir;
  cd::DvcLiveObserver live(dir.path() + "/live");
  live.on_finish(nullptr);
  cd::write_dvclive(dir.path() + "/live", {});
  CHECK_FALSE(std::filesystem::exists(dir.path() + "/live"));
}
