#include <catch2/catch.hpp>

#include "cd-train/checkpoint.h"
#include "domain/model_file.h"
#include "util/errors.h"

namespace {

cd::Checkpoint sample() {
  cd::Checkpoint c;
  c.identity = {{"architecture", "compact"}, {"seed", 42}};
  c.model_meta = {{"architecture", "compact"}};
  c.state.epoch = 3;
  c.state.lr = 5e-4;
  c.state.early.best_loss = 0.25;
  c.state.early.best_epoch = 2;
  c.state.early.wait = 1;
  c.state.plateau.best = 0.25;
  c.state.plateau.bad = 1;
  c.state.stop = cd::StopReason::k_early_stopping;
  c.state.stop_message = "early stopping: no val loss improvement for 1 epochs";
  for (int e = 1; e <= 3; ++e)
    c.state.history.push_back({e, 1e12 + e, 0.5, 0.7, 0.3, 0.8, 1e-3, 2.5, 0.4 + 0.01 * e});
  c.state.best_weights = std::string("best\0weights", 12);
  c.weights = "last weights";
  c.optimizer = "adam state";
  return c;
}

}  // namespace

TEST_CASE("a checkpoint round-trips every field --resume needs", "[checkpoint]") {
  cd::Checkpoint in = sample();
  cd::Checkpoint out = cd::decode_checkpoint(cd::encode_checkpoint(in), "ckpt");
  CHECK(out.identity == in.identity);
  CHECK(out.model_meta == in.model_meta);
  CHECK(out.state.epoch == 3);
  CHECK(out.state.lr == 5e-4);
  CHECK(out.state.early.best_loss == 0.25);
  CHECK(out.state.early.best_epoch == 2);
  CHECK(out.state.early.wait == 1);
  CHECK(out.state.plateau.bad == 1);
  CHECK(out.state.stop == cd::StopReason::k_early_stopping);
  CHECK(out.state.finished());
  REQUIRE(out.state.history.size() == 3);
  CHECK(out.state.history[2].epoch == 3);
  CHECK(out.state.history[2].timestamp_ms == 1e12 + 3);
  CHECK(out.state.history[2].val_p_dog_mean == Approx(0.43));
  CHECK(out.state.best_weights == in.state.best_weights);
  CHECK(out.weights == "last weights");
  CHECK(out.optimizer == "adam state");
}

TEST_CASE("checkpoints from before the stop field still resume", "[checkpoint]") {
  cd::FileParts parts = cd::unpack_file(cd::encode_checkpoint(sample()), "ckpt");
  parts.meta.erase("stop");
  parts.meta["stop_reason"] = "reached 3 epochs";
  CHECK(cd::decode_checkpoint(cd::pack_file(parts), "ckpt").state.stop == cd::StopReason::k_epochs);
  parts.meta["stop_reason"] = "time budget of 5 min reached";
  CHECK(cd::decode_checkpoint(cd::pack_file(parts), "ckpt").state.stop ==
        cd::StopReason::k_time_budget);
  parts.meta["finished"] = false;
  CHECK(cd::decode_checkpoint(cd::pack_file(parts), "ckpt").state.stop ==
        cd::StopReason::k_running);
}

TEST_CASE("epoch records from before the P(dog) reference read as unknown", "[checkpoint]") {
  nlohmann::json old = cd::record_to_json(sample().state.history[0]);
  CHECK(old.at("val_p_dog_mean") == Approx(0.41));
  old.erase("val_p_dog_mean");
  CHECK(cd::record_from_json(old).val_p_dog_mean == -1);
}

TEST_CASE("a damaged checkpoint is a ModelError naming the file", "[checkpoint]") {
  std::string bytes = cd::encode_checkpoint(sample());
  CHECK_THROWS_AS(cd::decode_checkpoint(bytes.substr(0, bytes.size() - 5), "ckpt"), cd::ModelError);
  cd::FileParts parts = cd::unpack_file(bytes, "ckpt");
  parts.meta.erase("history");
  CHECK_THROWS_WITH(cd::decode_checkpoint(cd::pack_file(parts), "ckpt"),
                    Catch::StartsWith("ckpt: training state is malformed"));
  parts.kind = cd::FileKind::k_model;
  CHECK_THROWS_WITH(cd::decode_checkpoint(cd::pack_file(parts), "m.cdm"),
                    Catch::Contains("not a training checkpoint"));
}
