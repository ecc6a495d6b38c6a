// Logging to stderr through spdlog: human text on a terminal, or one JSON
// object per line (--log-format json) for log collectors.
#pragma once

#include <nlohmann/json.hpp>
#include <string>

namespace cd::log {

enum class Format { k_text, k_json };

Format parse_format(const std::string& name);  // throws UsageError

// Installs the default logger. level is trace|debug|info|warn|error.
void setup(const std::string& level, const std::string& format);

// One structured event (e.g. an HTTP request): JSON mode puts the fields at
// the top level of the line; text mode appends them as key=value.
void event(const std::string& message, const nlohmann::json& fields);

// Renders one record the way the JSON sink writes it (exposed for tests).
std::string json_line(const std::string& level, const std::string& logger,
                      const std::string& message, double unix_seconds);

}  // namespace cd::log
