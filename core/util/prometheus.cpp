#include "util/prometheus.h"

#include <charconv>
#include <cmath>
#include <cstdio>
#include <stdexcept>

namespace cd::prom {

namespace {

std::string label_text(const Labels& labels, const std::string& extra_key = "",
                       const std::string& extra = "") {
  if (labels.empty() && extra_key.empty()) return "";
  std::string out = "{";
  bool first = true;
  for (const auto& [k, v] : labels) {
    out += (first ? "" : ",") + k + "=\"" + escape_label(v) + "\"";
    first = false;
  }
  if (!extra_key.empty()) out += (first ? "" : ",") + extra_key + "=\"" + extra + "\"";
  return out + "}";
}

}  // namespace

std::string escape_label(const std::string& value) {
  std::string out;
  for (char c : value) {
    if (c == '\\')
      out += "\\\\";
    else if (c == '"')
      out += "\\\"";
    else if (c == '\n')
      out += "\\n";
    else
      out += c;
  }
  return out;
}

std::string format_value(double v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  char buf[64];
  auto [end, ec] = std::to_chars(buf, buf + sizeof buf, v);  // shortest round-trip form
  return std::string(buf, end);
}

Registry::Family& Registry::family(const std::string& name) {
  auto it = m_families.find(name);
  if (it == m_families.end()) throw std::logic_error("metric " + name + " was not registered");
  return it->second;
}

void Registry::counter(const std::string& name, const std::string& help) {
  std::lock_guard<std::mutex> lock(m_mutex);
  m_families[name] = {help, "counter", {}, {}, {}};
  m_order.push_back(name);
}

void Registry::gauge(const std::string& name, const std::string& help) {
  std::lock_guard<std::mutex> lock(m_mutex);
  m_families[name] = {help, "gauge", {}, {}, {}};
  m_order.push_back(name);
}

void Registry::histogram(const std::string& name, const std::string& help,
                         std::vector<double> buckets) {
  std::lock_guard<std::mutex> lock(m_mutex);
  m_families[name] = {help, "histogram", std::move(buckets), {}, {}};
  m_order.push_back(name);
}

void Registry::gauge_fn(const std::string& name, const std::string& help,
                        std::function<double()> fn, const std::string& type) {
  std::lock_guard<std::mutex> lock(m_mutex);
  m_families[name] = {help, type, {}, {}, std::move(fn)};
  m_order.push_back(name);
}

void Registry::inc(const std::string& name, const Labels& labels, double by) {
  std::lock_guard<std::mutex> lock(m_mutex);
  family(name).series[labels].value += by;
}

void Registry::set(const std::string& name, const Labels& labels, double value) {
  std::lock_guard<std::mutex> lock(m_mutex);
  family(name).series[labels].value = value;
}

void Registry::observe(const std::string& name, const Labels& labels, double value) {
  std::lock_guard<std::mutex> lock(m_mutex);
  Family& f = family(name);
  Series& s = f.series[labels];
  if (s.bucket_counts.empty()) s.bucket_counts.assign(f.buckets.size(), 0);
  for (std::size_t i = 0; i < f.buckets.size(); ++i)
    if (value <= f.buckets[i]) s.bucket_counts[i] += 1;
  s.sum += value;
  s.count += 1;
}

std::string Registry::render() const {
  std::lock_guard<std::mutex> lock(m_mutex);
  std::string out;
  for (const auto& name : m_order) {
    const Family& f = m_families.at(name);
    out += "# HELP " + name + " " + f.help + "\n# TYPE " + name + " " + f.type + "\n";
    if (f.fn) {
      out += name + " " + format_value(f.fn()) + "\n";
      continue;
    }
    for (const auto& [labels, s] : f.series) {
      if (f.type != "histogram") {
        out += name + label_text(labels) + " " + format_value(s.value) + "\n";
        continue;
      }
      for (std::size_t i = 0; i < f.buckets.size(); ++i)
        out += name + "_bucket" + label_text(labels, "le", format_value(f.buckets[i])) + " " +
               format_value(s.bucket_counts[i]) + "\n";
      out +=
          name + "_bucket" + label_text(labels, "le", "+Inf") + " " + format_value(s.count) + "\n";
      out += name + "_sum" + label_text(labels) + " " + format_value(s.sum) + "\n";
      out += name + "_count" + label_text(labels) + " " + format_value(s.count) + "\n";
    }
  }
  return out;
}

}  // namespace cd::prom
