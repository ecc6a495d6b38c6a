// Layered settings for every tool: built-in defaults, then a YAML file, then
// CD_<FLAG> environment variables, then the command line (later wins).
// Every option is declared once, with its help text, range and env variable;
// unknown keys, unknown flags and out-of-range values raise cd::UsageError
// naming where the bad value came from and what is allowed.
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace cd {

struct Option {
  std::string key;   // dotted YAML key, e.g. "schedule.epochs"
  std::string flag;  // long flag without dashes, e.g. "epochs"
  std::string help;
  std::string allowed;   // human description of the allowed values
  bool is_flag = false;  // a boolean switch on the command line
  std::function<void(const std::string& text, const std::string& origin)> set;
  std::function<std::string()> show;

  std::string env_name() const;
};

enum class ParseOutcome { k_run, k_exit_ok };

// Settings as (dotted key, value text) pairs, in declaration order.
using Settings = std::vector<std::pair<std::string, std::string>>;

class Config {
 public:
  Config(std::string tool, std::string description);
  ~Config();

  void add_int(const std::string& key, int& target, const std::string& help, int lo, int hi,
               const std::string& flag = "");
  void add_double(const std::string& key, double& target, const std::string& help, double lo,
                  double hi, const std::string& flag = "");
  void add_string(const std::string& key, std::string& target, const std::string& help,
                  const std::string& flag = "");
  void add_choice(const std::string& key, std::string& target, const std::string& help,
                  std::vector<std::string> choices, const std::string& flag = "");
  void add_bool(const std::string& key, bool& target, const std::string& help,
                const std::string& flag = "");
  void add_doubles(const std::string& key, std::vector<double>& target, const std::string& help,
                   std::size_t count, double lo, double hi, const std::string& flag = "");
  // Positional arguments (cd-predict's IMAGE...).
  void add_positionals(const std::string& name, std::vector<std::string>& target,
                       const std::string& help);

  // The YAML file read when --config is not given; skipped if absent.
  void set_default_config_file(std::string path);

  // Parses everything. Returns k_exit_ok after printing --help, --help-markdown
  // or --version.
  ParseOutcome parse(int argc, char** argv);

  // Applies one YAML document; origin names the file in errors. Public for tests.
  void apply_yaml_text(const std::string& text, const std::string& origin);
  void apply_env();

  // The Markdown reference of every option (flag, environment variable, config
  // key, values, built-in default, help): what --help-markdown prints.
  std::string reference_markdown() const;

  // Every setting in effect after parsing, as (key, value) pairs in
  // declaration order: what cd-train sends to MLflow as the run's params.
  Settings effective() const;
  const std::string& config_file() const { return m_config_file; }

 private:
  Option& add(Option option);
  Option* find_key(const std::string& key);

  std::string m_tool;
  std::string m_description;
  std::string m_default_config_file;
  std::string m_config_file;
  std::vector<Option> m_options;
  std::string m_positional_name;
  std::string m_positional_help;
  std::vector<std::string>* m_positionals = nullptr;
};

}  // namespace cd
