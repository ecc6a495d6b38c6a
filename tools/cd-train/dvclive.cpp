#include "cd-train/dvclive.h"

#include <cstdio>
#include <nlohmann/json.hpp>

#include "util/atomic_file.h"

namespace cd {

namespace {

void write_tsv(const std::string& path, const std::string& name,
               const std::vector<EpochRecord>& history, double EpochRecord::*field) {
  std::string out = "timestamp\tstep\t" + name + "\n";
  char line[128];
  for (const auto& r : history) {
    std::snprintf(line, sizeof line, "%.0f\t%d\t%.17g\n", r.timestamp_ms, r.epoch - 1, r.*field);
    out += line;
  }
  write_file_atomic(path, out);
}

}  // namespace

void write_dvclive(const std::string& dir, const std::vector<EpochRecord>& history) {
  if (history.empty()) return;
  const EpochRecord& last = history.back();
  nlohmann::json m = {{"train", {{"loss", last.train_loss}, {"acc", last.train_acc}}},
                      {"val", {{"loss", last.val_loss}, {"acc", last.val_acc}}},
                      {"lr", last.lr},
                      {"step", last.epoch - 1}};
  write_file_atomic(dir + "/metrics.json", m.dump(2) + "\n");
  std::string plots = dir + "/plots/metrics";
  write_tsv(plots + "/train/loss.tsv", "loss", history, &EpochRecord::train_loss);
  write_tsv(plots + "/train/acc.tsv", "acc", history, &EpochRecord::train_acc);
  write_tsv(plots + "/val/loss.tsv", "loss", history, &EpochRecord::val_loss);
  write_tsv(plots + "/val/acc.tsv", "acc", history, &EpochRecord::val_acc);
  write_tsv(plots + "/lr.tsv", "lr", history, &EpochRecord::lr);
}

void DvcLiveObserver::on_epoch(const EpochRecord&, const std::vector<EpochRecord>& history) {
  write_dvclive(m_dir, history);
}

void DvcLiveObserver::on_finish(const TrainSummary* summary) {
  if (summary) write_dvclive(m_dir, summary->history);
}

}  // namespace cd
