// A small Prometheus registry: counters, gauges and histograms with labels,
// rendered in the text exposition format 0.0.4. Thread-safe.
#pragma once

#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <vector>

namespace cd::prom {

using Labels = std::vector<std::pair<std::string, std::string>>;

class Registry {
 public:
  void counter(const std::string& name, const std::string& help);
  void gauge(const std::string& name, const std::string& help);
  void histogram(const std::string& name, const std::string& help, std::vector<double> buckets);

  void inc(const std::string& name, const Labels& labels = {}, double by = 1.0);
  void set(const std::string& name, const Labels& labels, double value);
  void observe(const std::string& name, const Labels& labels, double value);
  // A gauge computed at scrape time (memory, CPU, queue depth).
  void gauge_fn(const std::string& name, const std::string& help, std::function<double()> fn,
                const std::string& type = "gauge");

  std::string render() const;

 private:
  struct Series {
    double value = 0;
    std::vector<double> bucket_counts;
    double sum = 0;
    double count = 0;
  };
  struct Family {
    std::string help, type;
    std::vector<double> buckets;
    std::map<Labels, Series> series;
    std::function<double()> fn;
  };
  Family& family(const std::string& name);

  mutable std::mutex m_mutex;
  std::map<std::string, Family> m_families;
  std::vector<std::string> m_order;
};

std::string escape_label(const std::string& value);
std::string format_value(double v);

}  // namespace cd::prom
