#include <catch2/catch.hpp>
#include <cstdlib>

#include "helpers.h"
#include "util/config.h"
#include "util/errors.h"
#include "util/version.h"

namespace {

struct Fixture {
  int epochs = 30;
  double lr = 0.001;
  std::string device = "cpu";
  bool resume = false;
  std::vector<double> split{0.8, 0.1, 0.1};
  cd::Config config{"cd-test", "test"};
  Fixture() {
    config.add_int("schedule.epochs", epochs, "epochs", 1, 1000, "epochs");
    config.add_double("optimizer.lr", lr, "learning rate", 1e-7, 1.0, "lr");
    config.add_choice("run.device", device, "device", {"cpu", "cuda", "auto"}, "device");
    config.add_bool("resume", resume, "resume");
    config.add_doubles("split", split, "fractions", 3, 0.0, 1.0);
  }
  cd::ParseOutcome parse(std::vector<std::string> args) {
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    return config.parse(static_cast<int>(argv.size()), argv.data());
  }
};

std::string usage_message(const std::function<void()>& fn) {
  try {
    fn();
  } catch (const cd::UsageError& e) {
    return e.what();
  }
  return "no UsageError";
}

}  // namespace

TEST_CASE("defaults stay when nothing overrides them", "[config]") {
  Fixture f;
  REQUIRE(f.parse({"cd-test"}) == cd::ParseOutcome::k_run);
  CHECK(f.epochs == 30);
  CHECK(f.lr == Approx(0.001));
  CHECK_FALSE(f.resume);
}

TEST_CASE("precedence is defaults < YAML < environment < command line", "[config]") {
  cd::test::TempDir dir;
  cd::test::write_bytes(dir.file("c.yaml"),
                        "schedule:\n  epochs: 7\noptimizer:\n  lr: 0.5\nrun:\n  device: "
                        "cuda\nsplit: [0.7, 0.2, 0.1]\n");
  Fixture f;
  ::setenv("CD_LR", "0.25", 1);
  ::setenv("CD_DEVICE", "auto", 1);
  f.parse({"cd-test", "--config", dir.file("c.yaml"), "--device", "cpu", "--resume"});
  ::unsetenv("CD_LR");
  ::unsetenv("CD_DEVICE");
  CHECK(f.epochs == 7);         // YAML over default
  CHECK(f.lr == Approx(0.25));  // env over YAML
  CHECK(f.device == "cpu");     // command line over env
  CHECK(f.resume);
  CHECK(f.split == std::vector<double>{0.7, 0.2, 0.1});
  CHECK(f.config.config_file() == dir.file("c.yaml"));
}

TEST_CASE("an unknown YAML key names the file and the key", "[config]") {
  Fixture f;
  std::string msg =
      usage_message([&] { f.config.apply_yaml_text("schedule:\n  epoch: 3\n", "train.yaml"); });
  CHECK(msg.find("train.yaml") != std::string::npos);
  CHECK(msg.find("unknown key 'schedule.epoch'") != std::string::npos);
  CHECK(msg.find("schedule.epochs") != std::string::npos);  // lists what is known
}

TEST_CASE("a key given twice in YAML is an error, not a silent choice", "[config]") {
  Fixture f;
  std::string msg = usage_message(
      [&] { f.config.apply_yaml_text("schedule:\n  epochs: 3\n  epochs: 4\n", "train.yaml"); });
  CHECK(msg.find("key 'schedule.epochs' is given more than once") != std::string::npos);
  Fixture g;
  msg = usage_message([&] {
    g.config.apply_yaml_text("schedule:\n  epochs: 3\nschedule:\n  epochs: 4\n", "t.yaml");
  });
  CHECK(msg.find("key 'schedule' is given more than once") != std::string::npos);
}

// Found by fuzz_config: a mapping used as a key escaped as yaml-cpp's own exception.
TEST_CASE("a key that is a list or a mapping is a usage error", "[config]") {
  Fixture f;
  std::string msg =
      usage_message([&] { f.config.apply_yaml_text("schedule:\n  ? [a, b]\n  : 3\n", "t.yaml"); });
  CHECK(msg.find("keys must be plain names") != std::string::npos);
  Fixture g;
  msg = usage_message([&] { g.config.apply_yaml_text("{x: 1}: 2\n", "t.yaml"); });
  CHECK(msg.find("keys must be plain names") != std::string::npos);
}

TEST_CASE("an out-of-range value names the origin, the key and the range", "[config]") {
  Fixture f;
  std::string msg =
      usage_message([&] { f.config.apply_yaml_text("schedule:\n  epochs: 0\n", "t.yaml"); });
  CHECK(msg ==
        "t.yaml: key 'schedule.epochs': value 0 is out of range; allowed: an integer in [1, 1000]");
  msg = usage_message([&] { f.parse({"cd-test", "--lr", "abc"}); });
  CHECK(msg == "--lr: invalid value 'abc'; allowed: a number in [1e-07, 1]");
  ::setenv("CD_EPOCHS", "5000", 1);
  msg = usage_message([&] {
    Fixture g;
    g.parse({"cd-test"});
  });
  ::unsetenv("CD_EPOCHS");
  CHECK(msg.find("environment variable CD_EPOCHS") == 0);
}

TEST_CASE("unknown flags, bad choices and bad YAML are usage errors", "[config]") {
  Fixture f;
  CHECK_THROWS_AS(f.parse({"cd-test", "--nope"}), cd::UsageError);
  Fixture g;
  CHECK_THROWS_AS(g.parse({"cd-test", "--device", "tpu"}), cd::UsageError);
  Fixture h;
  CHECK_THROWS_AS(h.config.apply_yaml_text("a: [1,\n", "bad.yaml"), cd::UsageError);
  CHECK_THROWS_AS(h.config.apply_yaml_text("- 1\n- 2\n", "list.yaml"), cd::UsageError);
  Fixture i;
  CHECK_THROWS_AS(i.parse({"cd-test", "--config", "/nonexistent/x.yaml"}), cd::UsageError);
  Fixture j;
  CHECK_THROWS_AS(j.parse({"cd-test", "--split", "0.5,0.5"}), cd::UsageError);
}

TEST_CASE("the help and version flags ask the caller to exit 0", "[config]") {
  Fixture f;
  CHECK(f.parse({"cd-test", "--help"}) == cd::ParseOutcome::k_exit_ok);
  Fixture g;
  CHECK(g.parse({"cd-test", "--version"}) == cd::ParseOutcome::k_exit_ok);
  CHECK(cd::version_string("cd-x").find("LibTorch") != std::string::npos);
}

TEST_CASE("the Markdown reference lists every option with its env, key, values and default",
          "[config]") {
  Fixture f;
  setenv("CD_EPOCHS", "7", 1);  // the reference shows built-in defaults, not this run's settings
  const std::string md = f.config.reference_markdown();
  unsetenv("CD_EPOCHS");
  CHECK(md.rfind("# cd-test options\n", 0) == 0);
  CHECK(md.find("| `--epochs` | `CD_EPOCHS` | `schedule.epochs` | an integer in [1, 1000] | `30` | "
                "epochs |") != std::string::npos);
  // A '|' inside a cell is escaped, or the table's columns would shift.
  CHECK(md.find("one of cpu\\|cuda\\|auto") != std::string::npos);
  CHECK(md.find("| `--resume` | `CD_RESUME` | `resume` |") != std::string::npos);
  CHECK(md.find("`--split`") != std::string::npos);
  // parse() prints it and stops: nothing else is applied.
  CHECK(f.parse({"cd-test", "--help-markdown", "--epochs", "0"}) == cd::ParseOutcome::k_exit_ok);
  CHECK(f.epochs == 30);
}
