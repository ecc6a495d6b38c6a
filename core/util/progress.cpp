#include "util/progress.h"

#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <iostream>
#include <sstream>

#include <spdlog/spdlog.h>

namespace cd {

namespace {

double steady_seconds() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

double default_interval() {
  if (const char* env = std::getenv("CD_PROGRESS_INTERVAL")) {
    double v = std::atof(env);
    if (v > 0) return v;
  }
  return 10.0;
}

}  // namespace

Progress::Progress(std::string label, std::size_t total, Style style)
    : Progress(std::move(label), total, std::cerr,
               style == Style::k_auto ? (::isatty(2) ? Style::k_bar : Style::k_lines) : style,
               default_interval(), steady_seconds) {
  m_via_log = true;  // plain lines then follow --log-format (text or JSON)
}

Progress::Progress(std::string label, std::size_t total, std::ostream& out, Style style,
                   double interval_s, Clock clock)
    : m_label(std::move(label)),
      m_total(total),
      m_out(out),
      m_style(style),
      m_interval_s(style == Style::k_bar ? 0.1 : interval_s),
      m_clock(std::move(clock)),
      m_start(m_clock()),
      m_last_draw(m_start) {}

Progress::~Progress() { finish(); }

std::string Progress::format_duration(double seconds) {
  if (!std::isfinite(seconds) || seconds < 0) return "--:--";
  long s = std::lround(seconds);
  char buf[32];
  if (s >= 3600)
    std::snprintf(buf, sizeof buf, "%ld:%02ld:%02ld", s / 3600, (s / 60) % 60, s % 60);
  else
    std::snprintf(buf, sizeof buf, "%ld:%02ld", s / 60, s % 60);
  return buf;
}

std::string Progress::render(double now) const {
  std::size_t done = m_done.load();
  double elapsed = now - m_start;
  double rate = elapsed > 0 ? done / elapsed : 0.0;
  double eta = rate > 0 && m_total >= done ? (m_total - done) / rate : NAN;
  double fraction = m_total ? static_cast<double>(done) / m_total : 0.0;
  std::ostringstream line;
  line << m_label << ' ';
  if (m_style == Style::k_bar) {
    constexpr int k_width = 24;
    int filled = static_cast<int>(fraction * k_width);
    line << '[' << std::string(filled, '#') << std::string(k_width - filled, ' ') << "] ";
  }
  char nums[96];
  std::snprintf(nums, sizeof nums, "%3.0f%% %zu/%zu %.1f/s elapsed %s ETA %s", fraction * 100.0,
                done, m_total, rate, format_duration(elapsed).c_str(),
                format_duration(eta).c_str());
  line << nums;
  if (!m_suffix.empty()) line << ' ' << m_suffix;
  return line.str();
}

void Progress::maybe_draw(bool force) {
  if (m_style == Style::k_off) return;
  std::lock_guard<std::mutex> lock(m_mutex);
  if (m_finished) return;
  double now = m_clock();
  if (!force && now - m_last_draw < m_interval_s) return;
  m_last_draw = now;
  if (m_style == Style::k_bar) {
    m_out << '\r' << render(now) << "\x1b[K" << std::flush;
  } else {
    if (m_via_log)
      spdlog::info("{}", render(now));
    else
      m_out << render(now) << '\n' << std::flush;
  }
}

void Progress::advance(std::size_t n) {
  m_done.fetch_add(n);
  maybe_draw(false);
}

void Progress::set_suffix(std::string suffix) {
  std::lock_guard<std::mutex> lock(m_mutex);
  m_suffix = std::move(suffix);
}

void Progress::finish() {
  if (m_style == Style::k_off) return;
  maybe_draw(true);
  std::lock_guard<std::mutex> lock(m_mutex);
  if (m_finished) return;
  m_finished = true;
  if (m_style == Style::k_bar) m_out << '\n' << std::flush;
}

}  // namespace cd
