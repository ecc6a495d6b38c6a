#include "catdog/log.h"

#include <spdlog/sinks/base_sink.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include <chrono>
#include <cstdio>
#include <mutex>
#include <nlohmann/json.hpp>

#include "catdog/errors.h"

namespace cd::log {

namespace {

class JsonSink : public spdlog::sinks::base_sink<std::mutex> {
 protected:
  void sink_it_(const spdlog::details::log_msg& msg) override {
    double t = std::chrono::duration<double>(msg.time.time_since_epoch()).count();
    auto level = spdlog::level::to_string_view(msg.level);
    std::string line = json_line(std::string(level.data(), level.size()),
                                 std::string(msg.logger_name.data(), msg.logger_name.size()),
                                 std::string(msg.payload.data(), msg.payload.size()), t);
    line += '\n';
    std::fwrite(line.data(), 1, line.size(), stderr);
  }
  void flush_() override { std::fflush(stderr); }
};

}  // namespace

Format parse_format(const std::string& name) {
  if (name == "text") return Format::k_text;
  if (name == "json") return Format::k_json;
  throw UsageError("log format '" + name + "' is not known; allowed: text|json");
}

std::string json_line(const std::string& level, const std::string& logger,
                      const std::string& message, double unix_seconds) {
  nlohmann::json j;
  j["ts"] = unix_seconds;
  j["level"] = level;
  if (!logger.empty()) j["logger"] = logger;
  j["msg"] = message;
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

void setup(const std::string& level, const std::string& format) {
  auto lvl = spdlog::level::from_str(level);
  if (lvl == spdlog::level::off && level != "off")
    throw UsageError("log level '" + level + "' is not known; allowed: trace|debug|info|warn|error");
  std::shared_ptr<spdlog::logger> logger;
  if (parse_format(format) == Format::k_json) {
    logger = std::make_shared<spdlog::logger>("", std::make_shared<JsonSink>());
  } else {
    logger = std::make_shared<spdlog::logger>(
        "", std::make_shared<spdlog::sinks::stderr_color_sink_mt>());
    logger->set_pattern("%H:%M:%S %^%-5l%$ %v");
  }
  logger->set_level(lvl);
  logger->flush_on(spdlog::level::warn);
  spdlog::set_default_logger(logger);
}

}  // namespace cd::log
