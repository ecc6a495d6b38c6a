#include "cd-train/checkpoint.h"

#include <cstdint>
#include <cstring>

#include "domain/model_file.h"
#include "util/errors.h"
#include "util/strings.h"

namespace cd {

namespace {

using json = nlohmann::json;

std::string pack_blobs(const std::vector<std::string>& blobs) {
  std::string out;
  for (const auto& b : blobs) {
    std::uint64_t n = b.size();
    out.append(reinterpret_cast<const char*>(&n), sizeof n);
    out += b;
  }
  return out;
}

std::vector<std::string> unpack_blobs(const std::string& data, std::size_t count,
                                      const std::string& origin) {
  std::vector<std::string> blobs;
  std::size_t pos = 0;
  for (std::size_t i = 0; i < count; ++i) {
    std::uint64_t n = 0;
    if (data.size() - pos < sizeof n)
      throw ModelError(origin + ": checkpoint payload is truncated");
    std::memcpy(&n, data.data() + pos, sizeof n);
    pos += sizeof n;
    if (data.size() - pos < n) throw ModelError(origin + ": checkpoint payload is truncated");
    blobs.push_back(data.substr(pos, n));
    pos += n;
  }
  return blobs;
}

// Checkpoints written before "stop" existed kept the reason as text only.
StopReason stop_from_legacy(const json& j) {
  if (!j.at("finished").get<bool>()) return StopReason::k_running;
  std::string text = j.value("stop_reason", "");
  if (starts_with(text, "early")) return StopReason::k_early_stopping;
  if (starts_with(text, "time")) return StopReason::k_time_budget;
  return StopReason::k_epochs;
}

Checkpoint from_parts(const FileParts& parts, const std::string& origin);

}  // namespace

json record_to_json(const EpochRecord& r) {
  return {{"epoch", r.epoch},
          {"timestamp_ms", r.timestamp_ms},
          {"train_loss", r.train_loss},
          {"train_acc", r.train_acc},
          {"val_loss", r.val_loss},
          {"val_acc", r.val_acc},
          {"lr", r.lr},
          {"seconds", r.seconds},
          {"val_p_dog_mean", r.val_p_dog_mean}};
}

EpochRecord record_from_json(const json& j) {
  EpochRecord r;
  r.epoch = j.at("epoch");
  r.timestamp_ms = j.at("timestamp_ms");
  r.train_loss = j.at("train_loss");
  r.train_acc = j.at("train_acc");
  r.val_loss = j.at("val_loss");
  r.val_acc = j.at("val_acc");
  r.lr = j.at("lr");
  r.seconds = j.at("seconds");
  r.val_p_dog_mean = j.value("val_p_dog_mean", -1.0);
  return r;
}

std::string encode_checkpoint(const Checkpoint& c) {
  const TrainState& s = c.state;
  json j;
  j["identity"] = c.identity;
  j["model_meta"] = c.model_meta;
  j["epoch"] = s.epoch;
  j["lr"] = s.lr;
  j["best_val_loss"] = s.early.best_loss;
  j["best_epoch"] = s.early.best_epoch;
  j["wait"] = s.early.wait;
  j["plateau_best"] = std::isfinite(s.plateau.best) ? s.plateau.best : 1e300;
  j["plateau_bad"] = s.plateau.bad;
  j["finished"] = s.finished();
  j["stop"] = to_string(s.stop);
  j["stop_reason"] = s.stop_message;
  j["history"] = json::array();
  for (const auto& r : s.history) j["history"].push_back(record_to_json(r));
  FileParts parts{FileKind::k_checkpoint, j, pack_blobs({c.weights, s.best_weights, c.optimizer})};
  return pack_file(parts);
}

Checkpoint decode_checkpoint(const std::string& bytes, const std::string& origin) {
  FileParts parts = unpack_file(bytes, origin);
  if (parts.kind != FileKind::k_checkpoint)
    throw ModelError(origin + " is a model file, not a training checkpoint");
  return from_parts(parts, origin);
}

Checkpoint read_checkpoint(const std::string& path) {
  return from_parts(read_parts(path, FileKind::k_checkpoint), path);
}

namespace {

Checkpoint from_parts(const FileParts& parts, const std::string& origin) {
  Checkpoint c;
  TrainState& s = c.state;
  const json& j = parts.meta;
  try {
    c.identity = j.at("identity");
    c.model_meta = j.value("model_meta", json::object());
    s.epoch = j.at("epoch");
    s.lr = j.at("lr");
    s.early.best_loss = j.at("best_val_loss");
    s.early.best_epoch = j.at("best_epoch");
    s.early.wait = j.at("wait");
    s.plateau.best = j.at("plateau_best");
    s.plateau.bad = j.at("plateau_bad");
    s.stop = j.contains("stop") ? parse_stop_reason(j.at("stop")) : stop_from_legacy(j);
    s.stop_message = j.value("stop_reason", "");
    for (const auto& r : j.at("history")) s.history.push_back(record_from_json(r));
  } catch (const json::exception& e) {
    throw ModelError(origin + ": training state is malformed (" + e.what() + ")");
  }
  auto blobs = unpack_blobs(parts.payload, 3, origin);
  c.weights = std::move(blobs[0]);
  s.best_weights = std::move(blobs[1]);
  c.optimizer = std::move(blobs[2]);
  return c;
}

}  // namespace

}  // namespace cd
