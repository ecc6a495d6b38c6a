// The training loop (trainer.cpp) end to end on the committed photos, small:
// what it tells its observers and when, the files it leaves at each epoch, a
// resumed run continuing the history it stopped in, and a failed run still
// closing every observer.
#include "catch_torch.h"

#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include "cd-train/observer.h"
#include "cd-train/train.h"
#include "domain/manifest.h"
#include "helpers.h"
#include "util/atomic_file.h"
#include "util/errors.h"

namespace {

namespace fs = std::filesystem;

// Records every call, and what was on disk when each epoch was reported.
struct Recorder : cd::TrainObserver {
  std::string output;
  int starts = 0, finishes = 0;
  bool finished_with_summary = false;
  cd::RunStart start;
  std::vector<int> epochs;
  std::vector<bool> files_present;
  void on_start(const cd::RunStart& run) override {
    ++starts;
    start = run;
  }
  void on_epoch(const cd::EpochRecord& record, const std::vector<cd::EpochRecord>&) override {
    epochs.push_back(record.epoch);
    files_present.push_back(fs::exists(output + "/model.cdm") &&
                            fs::exists(output + "/checkpoint.cdm"));
  }
  void on_finish(const cd::TrainSummary* summary) override {
    ++finishes;
    finished_with_summary = summary != nullptr;
  }
};

cd::TrainParams small_run(const cd::test::TempDir& dir, int epochs) {
  std::string manifest = cd::format_manifest(cd::test::fixture_photos());
  for (const char* split : {"train.csv", "val.csv", "test.csv"})
    cd::test::write_bytes(dir.file("data/") + split, manifest);
  cd::TrainParams p;
  p.architecture = "compact";
  p.input_size = 48;
  p.epochs = epochs;
  p.batch_size = 4;
  p.lr = 3e-3;
  p.early_stopping_patience = 100;
  p.plateau_patience = 100;
  p.augmentation = {0, 0, 0, false};  // the same pixels every epoch: the loss must fall
  // Two compute threads, or CD_THREADS: the TSan run sets 1 (LibTorch's OpenMP pool is not
  // instrumented there).
  const char* threads = std::getenv("CD_THREADS");
  p.threads = threads ? std::atoi(threads) : 2;
  p.data = dir.file("data");
  p.output = dir.file("models");
  p.metrics = dir.file("metrics/train.json");
  p.live = dir.file("live");
  return p;
}

}  // namespace

TEST_CASE("trainer: observers hear the start, every epoch after its files, and the end",
          "[trainer]") {
  cd::test::TempDir dir;
  cd::TrainParams p = small_run(dir, 4);
  Recorder rec;
  rec.output = p.output;
  cd::TrainSummary s = cd::train(p, {&rec});
  CHECK(rec.starts == 1);
  CHECK(rec.start.tags.at("resumed") == "false");
  CHECK(rec.epochs == std::vector<int>{1, 2, 3, 4});
  CHECK(rec.files_present == std::vector<bool>{true, true, true, true});
  CHECK(rec.finishes == 1);
  CHECK(rec.finished_with_summary);
  REQUIRE(s.history.size() == 4);
  CHECK(s.stop == cd::StopReason::k_epochs);
  CHECK(s.best_epoch >= 1);
  CHECK(s.best_epoch <= 4);
  CHECK(s.train_images == 8);
  CHECK(s.history.back().train_loss < s.history.front().train_loss);
  CHECK(fs::exists(p.metrics));
  CHECK(fs::exists(p.live));
}

TEST_CASE("trainer: a resumed run continues the history its checkpoint holds", "[trainer]") {
  cd::test::TempDir dir;
  cd::TrainParams p = small_run(dir, 2);
  cd::TrainSummary first = cd::train(p);
  REQUIRE(first.history.size() == 2);
  p.epochs = 4;
  p.resume = true;
  Recorder rec;
  rec.output = p.output;
  cd::TrainSummary resumed = cd::train(p, {&rec});
  CHECK(rec.start.tags.at("resumed") == "true");
  CHECK(rec.epochs == std::vector<int>{3, 4});  // only the epochs this run trained
  REQUIRE(resumed.history.size() == 4);
  for (int i = 0; i < 2; ++i) {
    CHECK(resumed.history[i].epoch == first.history[i].epoch);
    CHECK(resumed.history[i].train_loss == first.history[i].train_loss);
  }
}

TEST_CASE("trainer: a run that fails still closes every observer, with no summary", "[trainer]") {
  cd::test::TempDir dir;
  cd::TrainParams p = small_run(dir, 2);
  fs::remove(dir.file("data/train.csv"));
  Recorder rec;
  rec.output = p.output;
  CHECK_THROWS(cd::train(p, {&rec}));
  CHECK(rec.finishes == 1);
  CHECK_FALSE(rec.finished_with_summary);
  CHECK(rec.epochs.empty());
}
