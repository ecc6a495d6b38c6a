// Progress reporting for long work. On a terminal: a live bar with rate and
// ETA redrawn in place. Elsewhere (CI, DVC, pipes): one plain line every
// interval, so logs stay readable.
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <functional>
#include <iosfwd>
#include <mutex>
#include <string>

namespace cd {

class Progress {
 public:
  using Clock = std::function<double()>;  // seconds, monotonic

  enum class Style { k_auto, k_bar, k_lines, k_off };

  Progress(std::string label, std::size_t total, Style style = Style::k_auto);
  // Full control, for tests: explicit stream, style, interval and clock.
  Progress(std::string label, std::size_t total, std::ostream& out, Style style, double interval_s,
           Clock clock);
  ~Progress();

  void advance(std::size_t n = 1);
  void set_suffix(std::string suffix);  // e.g. "loss 0.412"
  void finish();

  static std::string format_duration(double seconds);

 private:
  void maybe_draw(bool force);
  std::string render(double now) const;

  std::string m_label;
  std::size_t m_total;
  std::ostream& m_out;
  Style m_style;
  double m_interval_s;
  Clock m_clock;
  double m_start;
  double m_last_draw = -1e9;
  std::atomic<std::size_t> m_done{0};
  std::string m_suffix;
  bool m_finished = false;
  bool m_via_log = false;
  mutable std::mutex m_mutex;
};

}  // namespace cd
