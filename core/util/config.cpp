#include "util/config.h"

#include <yaml-cpp/yaml.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <cctype>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <set>
#include <sstream>

#include "util/atomic_file.h"
#include "util/errors.h"
#include "util/strings.h"
#include "util/version.h"

namespace cd {

namespace {

[[noreturn]] void bad_value(const std::string& origin, const std::string& text,
                            const std::string& allowed) {
  throw UsageError(origin + ": invalid value '" + text + "'; allowed: " + allowed);
}

long long parse_integer(const std::string& text, const std::string& origin,
                        const std::string& allowed) {
  std::string t = trim(text);
  char* end = nullptr;
  errno = 0;
  long long v = std::strtoll(t.c_str(), &end, 10);
  if (t.empty() || *end != '\0' || errno == ERANGE) bad_value(origin, text, allowed);
  return v;
}

double parse_real(const std::string& text, const std::string& origin, const std::string& allowed) {
  std::string t = trim(text);
  char* end = nullptr;
  double v = std::strtod(t.c_str(), &end);
  if (t.empty() || *end != '\0' || !std::isfinite(v)) bad_value(origin, text, allowed);
  return v;
}

std::string format_real(double v) {
  std::ostringstream out;
  out << v;
  return out.str();
}

// yaml-cpp keeps a key given twice in a mapping; YAML forbids it, and
// silently taking one of them would hide a mistake, so it is an error.
void flatten(const YAML::Node& node, const std::string& prefix,
             std::vector<std::pair<std::string, YAML::Node>>& out, const std::string& origin) {
  if (node.IsMap()) {
    std::set<std::string> seen;
    for (const auto& kv : node) {
      if (!kv.first.IsScalar())
        throw UsageError(origin + ": a key under '" + prefix +
                         "' is a list or mapping; keys must be plain names");
      std::string key = kv.first.as<std::string>();
      std::string full = prefix.empty() ? key : prefix + "." + key;
      if (!seen.insert(key).second)
        throw UsageError(origin + ": key '" + full + "' is given more than once; keep one");
      flatten(kv.second, full, out, origin);
    }
  } else {
    out.emplace_back(prefix, node);
  }
}

std::string scalar_text(const YAML::Node& node, const std::string& origin) {
  if (node.IsScalar()) return node.as<std::string>();
  if (node.IsSequence()) {
    std::string joined;
    for (std::size_t i = 0; i < node.size(); ++i) {
      if (!node[i].IsScalar()) throw UsageError(origin + ": expected a list of numbers");
      joined += (i ? "," : "") + node[i].as<std::string>();
    }
    return joined;
  }
  throw UsageError(origin + ": has no value");
}

}  // namespace

std::string Option::env_name() const {
  std::string name = "CD_";
  for (char c : flag) name += c == '-' ? '_' : static_cast<char>(std::toupper(c));
  return name;
}

Config::Config(std::string tool, std::string description)
    : m_tool(std::move(tool)), m_description(std::move(description)) {}

Config::~Config() = default;

Option& Config::add(Option option) {
  if (option.flag.empty()) {
    option.flag = option.key;
    std::replace(option.flag.begin(), option.flag.end(), '.', '-');
    std::replace(option.flag.begin(), option.flag.end(), '_', '-');
  }
  m_options.push_back(std::move(option));
  return m_options.back();
}

Option* Config::find_key(const std::string& key) {
  for (auto& o : m_options)
    if (o.key == key) return &o;
  return nullptr;
}

void Config::add_int(const std::string& key, int& target, const std::string& help, int lo, int hi,
                     const std::string& flag) {
  std::string allowed = "an integer in [" + std::to_string(lo) + ", " + std::to_string(hi) + "]";
  Option o{key, flag, help, allowed};
  o.set = [&target, lo, hi, allowed](const std::string& text, const std::string& origin) {
    long long v = parse_integer(text, origin, allowed);
    if (v < lo || v > hi)
      throw UsageError(origin + ": value " + trim(text) + " is out of range; allowed: " + allowed);
    target = static_cast<int>(v);
  };
  o.show = [&target] { return std::to_string(target); };
  add(std::move(o));
}

void Config::add_double(const std::string& key, double& target, const std::string& help, double lo,
                        double hi, const std::string& flag) {
  std::string allowed = "a number in [" + format_real(lo) + ", " + format_real(hi) + "]";
  Option o{key, flag, help, allowed};
  o.set = [&target, lo, hi, allowed](const std::string& text, const std::string& origin) {
    double v = parse_real(text, origin, allowed);
    if (v < lo || v > hi)
      throw UsageError(origin + ": value " + trim(text) + " is out of range; allowed: " + allowed);
    target = v;
  };
  o.show = [&target] { return format_real(target); };
  add(std::move(o));
}

void Config::add_string(const std::string& key, std::string& target, const std::string& help,
                        const std::string& flag) {
  Option o{key, flag, help, "a string"};
  o.set = [&target](const std::string& text, const std::string&) { target = text; };
  o.show = [&target] { return target; };
  add(std::move(o));
}

void Config::add_choice(const std::string& key, std::string& target, const std::string& help,
                        std::vector<std::string> choices, const std::string& flag) {
  std::string allowed = "one of ";
  for (std::size_t i = 0; i < choices.size(); ++i) allowed += (i ? "|" : "") + choices[i];
  Option o{key, flag, help, allowed};
  o.set = [&target, choices, allowed](const std::string& text, const std::string& origin) {
    std::string t = trim(text);
    if (std::find(choices.begin(), choices.end(), t) == choices.end())
      bad_value(origin, text, allowed);
    target = t;
  };
  o.show = [&target] { return target; };
  add(std::move(o));
}

void Config::add_bool(const std::string& key, bool& target, const std::string& help,
                      const std::string& flag) {
  std::string allowed = "true|false";
  Option o{key, flag, help, allowed, /*is_flag=*/true};
  o.set = [&target, allowed](const std::string& text, const std::string& origin) {
    std::string t = to_lower(trim(text));
    if (t == "true" || t == "1" || t == "yes" || t == "on") {
      target = true;
    } else if (t == "false" || t == "0" || t == "no" || t == "off") {
      target = false;
    } else {
      bad_value(origin, text, allowed);
    }
  };
  o.show = [&target] { return std::string(target ? "true" : "false"); };
  add(std::move(o));
}

void Config::add_doubles(const std::string& key, std::vector<double>& target,
                         const std::string& help, std::size_t count, double lo, double hi,
                         const std::string& flag) {
  std::string allowed = std::to_string(count) + " comma-separated numbers in [" + format_real(lo) +
                        ", " + format_real(hi) + "]";
  Option o{key, flag, help, allowed};
  o.set = [&target, count, lo, hi, allowed](const std::string& text, const std::string& origin) {
    std::vector<double> values;
    std::string t = trim(text);
    if (t.size() >= 2 && t.front() == '[' && t.back() == ']') t = t.substr(1, t.size() - 2);
    std::stringstream in(t);
    std::string part;
    while (std::getline(in, part, ',')) values.push_back(parse_real(part, origin, allowed));
    if (values.size() != count) bad_value(origin, text, allowed);
    for (double v : values)
      if (v < lo || v > hi) bad_value(origin, text, allowed);
    target = values;
  };
  o.show = [&target] {
    std::string s;
    for (std::size_t i = 0; i < target.size(); ++i) s += (i ? "," : "") + format_real(target[i]);
    return s;
  };
  add(std::move(o));
}

void Config::add_positionals(const std::string& name, std::vector<std::string>& target,
                             const std::string& help) {
  m_positional_name = name;
  m_positional_help = help;
  m_positionals = &target;
}

void Config::set_default_config_file(std::string path) { m_default_config_file = std::move(path); }

void Config::apply_yaml_text(const std::string& text, const std::string& origin) {
  YAML::Node root;
  try {
    root = YAML::Load(text);
  } catch (const YAML::Exception& e) {
    throw UsageError(origin + ": not valid YAML: " + e.what());
  }
  if (root.IsNull()) return;
  if (!root.IsMap()) throw UsageError(origin + ": expected a mapping of keys to values at the top");
  std::vector<std::pair<std::string, YAML::Node>> leaves;
  try {
    flatten(root, "", leaves, origin);
  } catch (const YAML::Exception& e) {
    throw UsageError(origin + ": cannot read the YAML's structure: " + e.what());
  }
  for (const auto& [key, node] : leaves) {
    Option* option = find_key(key);
    if (!option) {
      std::string known;
      for (const auto& o : m_options) known += (known.empty() ? "" : ", ") + o.key;
      throw UsageError(origin + ": unknown key '" + key + "'; known keys: " + known);
    }
    std::string where = origin + ": key '" + key + "'";
    option->set(scalar_text(node, where), where);
  }
}

void Config::apply_env() {
  for (auto& o : m_options) {
    if (const char* value = std::getenv(o.env_name().c_str()))
      o.set(value, "environment variable " + o.env_name());
  }
}

std::string Config::reference_markdown() const {
  auto cell = [](std::string text) {
    std::string out;
    for (char ch : text) out += ch == '|' ? std::string("\\|") : std::string(1, ch);
    return out;
  };
  std::string md = "# " + m_tool + " options\n\n" + m_description + "\n\n";
  md += "Generated by `" + m_tool +
        " --help-markdown` (`make docs-reference`); edit the declarations in the tool's "
        "source, not this file.\n\n";
  md +=
      "Each option is read, later winning, from its built-in default, the YAML file (`--config "
      "FILE` or `CD_CONFIG`";
  if (!m_default_config_file.empty()) md += "; `" + m_default_config_file + "` when present";
  md += "), its environment variable, then its flag.\n\n";
  if (m_positionals) md += "Arguments: `" + m_positional_name + "`: " + m_positional_help + "\n\n";
  md += "| flag | environment | config key | values | default | meaning |\n";
  md += "|---|---|---|---|---|---|\n";
  for (const Option& o : m_options) {
    std::string shown = o.show();
    md += "| `--" + o.flag + "` | `" + o.env_name() + "` | `" + o.key + "` | " + cell(o.allowed) +
          " | " + (shown.empty() ? std::string("(empty)") : "`" + cell(shown) + "`") + " | " +
          cell(o.help) + " |\n";
  }
  return md;
}

ParseOutcome Config::parse(int argc, char** argv) {
  // Before CLI11 sees the line: the reference page of every option, built-in defaults.
  for (int i = 1; i < argc; ++i) {
    if (std::string(argv[i]) != "--help-markdown") continue;
    std::fputs(reference_markdown().c_str(), stdout);
    return ParseOutcome::k_exit_ok;
  }
  CLI::App app(m_description, m_tool);
  app.set_version_flag("--version", version_string(m_tool));
  app.get_formatter()->column_width(34);
  app.add_flag("--help-markdown", "print every option as a Markdown reference page and exit");
  std::string config_path;
  app.add_option(
      "--config", config_path,
      "YAML settings file (env CD_CONFIG)" +
          (m_default_config_file.empty() ? std::string() : "; default " + m_default_config_file));
  std::vector<std::string> texts(m_options.size());
  std::vector<CLI::Option*> cli(m_options.size());
  for (std::size_t i = 0; i < m_options.size(); ++i) {
    const Option& o = m_options[i];
    std::string help = o.help + " [" + o.allowed + "; default " + o.show() + "; env " +
                       o.env_name() + "; config " + o.key + "]";
    cli[i] = o.is_flag ? app.add_flag("--" + o.flag)->description(help)
                       : app.add_option("--" + o.flag, texts[i], help)->type_name("VALUE");
  }
  if (m_positionals) app.add_option(m_positional_name, *m_positionals, m_positional_help);
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    app.exit(e);
    return ParseOutcome::k_exit_ok;
  } catch (const CLI::CallForVersion& e) {
    app.exit(e);
    return ParseOutcome::k_exit_ok;
  } catch (const CLI::ParseError& e) {
    throw UsageError(std::string(e.what()) + "; run '" + m_tool + " --help' for usage");
  }
  if (config_path.empty()) {
    if (const char* env = std::getenv("CD_CONFIG")) config_path = env;
  }
  if (!config_path.empty()) {
    std::error_code ec;
    if (!std::filesystem::exists(config_path, ec))
      throw UsageError("config file '" + config_path + "' does not exist");
  } else if (!m_default_config_file.empty() && std::filesystem::exists(m_default_config_file)) {
    config_path = m_default_config_file;
  }
  if (!config_path.empty()) {
    std::string text;
    try {
      text = read_file(config_path);
    } catch (const IoError& e) {
      throw UsageError(e.what());
    }
    apply_yaml_text(text, config_path);
    m_config_file = config_path;
  }
  apply_env();
  for (std::size_t i = 0; i < m_options.size(); ++i) {
    if (cli[i]->count() == 0) continue;
    m_options[i].set(m_options[i].is_flag ? "true" : texts[i], "--" + m_options[i].flag);
  }
  return ParseOutcome::k_run;
}

Settings Config::effective() const {
  Settings out;
  for (const auto& o : m_options) out.emplace_back(o.key, o.show());
  return out;
}

}  // namespace cd
