#include "util/log.h"

#include <spdlog/sinks/base_sink.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <mutex>
#include <nlohmann/json.hpp>

#include "util/errors.h"
#include "util/strings.h"

namespace cd::log {

namespace {

Format g_format = Format::k_text;

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
    throw UsageError("log level '" + level +
                     "' is not known; allowed: trace|debug|info|warn|error");
  std::shared_ptr<spdlog::logger> logger;
  g_format = parse_format(format);
  if (g_format == Format::k_json) {
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

namespace cd::log {

void event(const std::string& message, const nlohmann::json& fields) {
  if (!spdlog::default_logger()->should_log(spdlog::level::info)) return;
  if (g_format == Format::k_json) {
    nlohmann::json j = fields;
    j["ts"] =
        std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
    j["level"] = "info";
    j["msg"] = message;
    std::string line = j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
    std::fwrite(line.data(), 1, line.size(), stderr);
    return;
  }
  std::string text = message;
  // A string with spaces, control bytes or quotes is written quoted and
  // escaped, so one event stays one line whatever a client sent.
  auto plain = [](const std::string& s) {
    return !s.empty() && valid_utf8(s) && std::none_of(s.begin(), s.end(), [](char c) {
      auto u = static_cast<unsigned char>(c);
      return u <= 0x20 || u == 0x7F || c == '"' || c == '\\';
    });
  };
  for (const auto& [k, v] : fields.items())
    text += " " + k + "=" +
            (v.is_string() && plain(v.get<std::string>())
                 ? v.get<std::string>()
                 : v.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
  spdlog::info("{}", text);
}

}  // namespace cd::log
