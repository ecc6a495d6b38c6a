// Per-epoch metrics in DVCLive's layout, so `dvc plots` and `dvc exp show`
// read cd-train's runs: <dir>/metrics.json (the last epoch) and
// <dir>/plots/metrics/{train,val}/{loss,acc}.tsv and lr.tsv.
#pragma once

#include <string>
#include <vector>

#include "cd-train/observer.h"

namespace cd {

// Rewrites every file atomically from the whole history (so a resumed run's
// files are complete); nothing is written for an empty history.
void write_dvclive(const std::string& dir, const std::vector<EpochRecord>& history);

class DvcLiveObserver : public TrainObserver {
 public:
  explicit DvcLiveObserver(std::string dir) : m_dir(std::move(dir)) {}
  void on_start(const RunStart&) override {}
  void on_epoch(const EpochRecord&, const std::vector<EpochRecord>& history) override;
  void on_finish(const TrainSummary* summary) override;

 private:
  std::string m_dir;
};

}  // namespace cd
