// run_serve: sockets, signals and lifecycle. The port is bound before the
// model loads, so /health answers at once and /ready turns 200 only after
// the model is loaded and warmed up. SIGHUP reloads; SIGTERM/SIGINT drain.
#include <pthread.h>
#include <signal.h>
#include <sys/resource.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <ctime>
#include <mutex>
#include <thread>

#include <spdlog/spdlog.h>

#include "cd-serve/http/http.h"
#include "cd-serve/serve.h"
#include "cd-serve/service.h"
#include "domain/image.h"
#include "util/errors.h"

namespace cd {

namespace {

// SIGTERM, SIGINT and SIGHUP are blocked in every thread and taken by one
// thread with sigwait, so no handler ever runs on an arbitrary thread
// (LibTorch's, httplib's) and no signal can be lost or deferred. SIGUSR2
// wakes that thread when the server stops by itself.
sigset_t serve_signals() {
  sigset_t set;
  sigemptyset(&set);
  for (int sig : {SIGTERM, SIGINT, SIGHUP, SIGUSR2}) sigaddset(&set, sig);
  return set;
}

// The next signal, or 0 after timeout_s (when positive) without one.
int next_signal(double timeout_s) {
  sigset_t set = serve_signals();
  if (timeout_s > 0) {
    timespec wait{};
    wait.tv_sec = static_cast<time_t>(timeout_s);
    wait.tv_nsec = static_cast<long>((timeout_s - static_cast<double>(wait.tv_sec)) * 1e9);
    for (;;) {
      int sig = sigtimedwait(&set, nullptr, &wait);
      if (sig > 0) return sig;
      if (errno == EAGAIN) return 0;
    }
  }
  int sig = 0;
  while (sigwait(&set, &sig) != 0) {
  }
  return sig;
}

// Loads run on a thread of their own, one at a time, so the signal thread
// takes SIGTERM at once even while a registered model downloads, and a poll
// never races a load. Requests that arrive during a load are kept, once: a
// SIGHUP's full load outranks a poll's "has the alias moved?".
class Reloader {
 public:
  enum class Ask { none, follow, load };

  explicit Reloader(serve::Service& service) : m_thread([this, &service] { run(service); }) {}
  ~Reloader() { stop(); }

  void ask(Ask what) {
    std::lock_guard<std::mutex> lock(m_mutex);
    if (what > m_pending) m_pending = what;
    m_wake.notify_one();
  }
  // Waits for the load under way, if any (a drain's grace period caps it).
  void stop() {
    {
      std::lock_guard<std::mutex> lock(m_mutex);
      m_stopping = true;
      m_wake.notify_one();
    }
    if (m_thread.joinable()) m_thread.join();
  }

 private:
  void run(serve::Service& service) {
    bool first = true;
    for (;;) {
      Ask what;
      {
        std::unique_lock<std::mutex> lock(m_mutex);
        m_wake.wait(lock, [&] { return m_stopping || m_pending != Ask::none; });
        if (m_stopping) return;
        what = m_pending;
        m_pending = Ask::none;
      }
      if (what == Ask::follow) {
        service.follow_registry();
      } else if (!service.load_model() && first) {
        spdlog::error("not ready: fix the model and send SIGHUP to retry");
      }
      first = false;
    }
  }

  std::mutex m_mutex;
  std::condition_variable m_wake;
  Ask m_pending = Ask::load;  // the first load
  bool m_stopping = false;
  std::thread m_thread;
};

}  // namespace

void block_serve_signals() {
  sigset_t set = serve_signals();
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  signal(SIGPIPE, SIG_IGN);
}

int run_serve(const ServeParams& params) {
  block_serve_signals();  // again, for callers other than cd-serve's main
  // Each open connection is a descriptor: allow as many as the hard limit.
  rlimit files{};
  if (getrlimit(RLIMIT_NOFILE, &files) == 0 && files.rlim_cur < files.rlim_max) {
    files.rlim_cur = files.rlim_max;
    setrlimit(RLIMIT_NOFILE, &files);
  }

  serve::Service service(params);
  http::ServerOptions options;
  options.host = params.host;
  options.port = params.port;
  options.threads = params.http_threads;
  options.max_body_bytes = static_cast<std::size_t>(params.max_body_mb * 1024 * 1024);
  options.max_parts = static_cast<std::size_t>(params.max_batch_files);
  options.header_timeout_s = params.header_timeout_s;
  options.max_connections = params.max_connections;
  options.max_pipelined = params.max_pipelined;
  options.max_unread_bytes = static_cast<std::size_t>(params.max_unread_mb * 1024 * 1024);
  options.write_stall_s = params.write_stall_s;
  http::Server server(options);
  server.handle([&](const http::Request& r) { return service.dispatch(r); },
                [&](int status, const std::string& reason, const http::Request& r) {
                  return service.on_http_error(status, reason, r);
                },
                [&](const http::Request& head) { return service.screen(head); });
  int port = server.bind();
  spdlog::info(
      "listening on http://{}:{} (model {}, {} HTTP threads, batch <= {}, delay <= {} ms, "
      "<= {} connections)",
      params.host, port, params.model, params.http_threads, service.params().max_batch,
      params.max_delay_ms, params.max_connections);

  Reloader reloader(service);
  std::thread signal_thread([&] {
    for (;;) {
      int sig = next_signal(service.from_registry() ? params.registry_poll_s : 0);
      if (sig == 0) {  // the registry poll's interval passed
        reloader.ask(Reloader::Ask::follow);
        continue;
      }
      if (sig == SIGUSR2) return;  // the server stopped by itself
      if (sig == SIGHUP) {
        spdlog::info("SIGHUP: reloading {}", params.model);
        reloader.ask(Reloader::Ask::load);
        continue;
      }
      spdlog::info("{}: draining in-flight requests (grace {} s)",
                   sig == SIGTERM ? "SIGTERM" : "SIGINT", params.grace_s);
      service.begin_drain();
      server.stop();
      std::thread([grace = params.grace_s] {
        std::this_thread::sleep_for(std::chrono::duration<double>(grace));
        spdlog::warn("grace period of {} s is over; exiting with requests still open", grace);
        std::fflush(stderr);
        _exit(0);
      }).detach();
      return;
    }
  });
  server.run();  // returns after stop(), once in-flight requests have answered
  reloader.stop();
  service.stop_worker();
  pthread_kill(signal_thread.native_handle(), SIGUSR2);
  signal_thread.join();
  spdlog::info("stopped cleanly");
  return 0;
}

}  // namespace cd
