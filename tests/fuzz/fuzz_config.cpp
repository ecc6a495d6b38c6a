// YAML text through the config loader, with keys of every kind a tool
// registers. Only UsageError may leave.
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "util/config.h"
#include "util/errors.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  int epochs = 30;
  double lr = 0.001;
  std::string device = "cpu", name = "x";
  bool flag = false;
  std::vector<double> split{0.8, 0.1, 0.1};
  cd::Config config("cd-fuzz", "fuzz");
  config.add_int("schedule.epochs", epochs, "epochs", 1, 1000, "epochs");
  config.add_double("optimizer.lr", lr, "learning rate", 1e-7, 1.0, "lr");
  config.add_choice("run.device", device, "device", {"cpu", "cuda", "auto"}, "device");
  config.add_string("model.name", name, "name");
  config.add_bool("resume", flag, "resume");
  config.add_doubles("split", split, "fractions", 3, 0.0, 1.0);
  try {
    config.apply_yaml_text(std::string(reinterpret_cast<const char*>(data), size), "fuzz.yaml");
  } catch (const cd::UsageError&) {
  }
  return 0;
}
