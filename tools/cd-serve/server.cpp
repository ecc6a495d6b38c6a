// run_serve: sockets, signals and lifecycle. The port is bound before the
// model loads, so /health answers at once and /ready turns 200 only after
// the model is loaded and warmed up. SIGHUP reloads; SIGTERM/SIGINT drain.
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <thread>

#include <spdlog/spdlog.h>

#include "cd-serve/http.h"
#include "cd-serve/serve.h"
#include "cd-serve/service.h"
#include "util/errors.h"

namespace cd {

namespace {

// Self-pipe: the handler only writes the signal number; a normal thread
// reads it and does the work. Handlers are process-wide, so this holds
// whichever thread (LibTorch's included) the kernel picks.
int g_signal_pipe[2] = {-1, -1};

void on_signal(int sig) {
  char byte = static_cast<char>(sig);
  ssize_t ignored = write(g_signal_pipe[1], &byte, 1);
  (void)ignored;
}

void install_signal_handlers() {
  if (pipe(g_signal_pipe) != 0) throw IoError("cannot create the signal pipe");
  struct sigaction action {};
  action.sa_handler = on_signal;
  sigemptyset(&action.sa_mask);
  action.sa_flags = SA_RESTART;
  for (int s : {SIGTERM, SIGINT, SIGHUP}) sigaction(s, &action, nullptr);
  signal(SIGPIPE, SIG_IGN);
}

int next_signal() {
  char byte = 0;
  while (read(g_signal_pipe[0], &byte, 1) < 0) {
  }
  return byte;
}

}  // namespace

int run_serve(const ServeParams& params) {
  install_signal_handlers();

  serve::Service service(params);
  http::ServerOptions options;
  options.host = params.host;
  options.port = params.port;
  options.threads = params.http_threads;
  options.max_body_bytes = static_cast<std::size_t>(params.max_body_mb * 1024 * 1024);
  http::Server server(options);
  server.handle(
      [&](const http::Request& r) { return service.dispatch(r); },
      [&](int status, const http::Request& r) { return service.on_http_error(status, r); });
  int port = server.bind();
  spdlog::info("listening on http://{}:{} (model {}, {} HTTP threads, batch <= {}, delay <= {} ms)",
               params.host, port, params.model, params.http_threads, params.max_batch,
               params.max_delay_ms);

  std::thread loader([&] {
    if (!service.load_model())
      spdlog::error("not ready: fix the model file and send SIGHUP to retry");
  });
  std::thread signal_thread([&] {
    for (;;) {
      int sig = next_signal();
      if (sig == 0) return;  // the server stopped by itself
      if (sig == SIGHUP) {
        spdlog::info("SIGHUP: reloading {}", params.model);
        service.load_model();
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
  loader.join();
  service.stop_worker();
  on_signal(0);
  signal_thread.join();
  spdlog::info("stopped cleanly");
  return 0;
}

}  // namespace cd
