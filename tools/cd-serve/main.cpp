// cd-serve: the HTTP inference service.
#include "cd-serve/serve.h"
#include "util/atomic_file.h"
#include "util/config.h"
#include "util/errors.h"
#include "util/options.h"

namespace {

int serve_main(int argc, char** argv) {
  cd::block_serve_signals();
  cd::ServeParams p;
  cd::CommonOptions common;
  cd::Config c("cd-serve",
               "Serve a cat/dog model over HTTP: /predict, /health, /ready, /metrics, /docs, a "
               "page at /, and the Open Inference Protocol (V2) under /v2.");
  c.add_string(
      "model", p.model,
      "model file from cd-train, or models:/NAME@ALIAS (models:/NAME/VERSION) from MLflow's "
      "Model Registry (SIGHUP reloads it, following the alias)");
  c.add_string("tracking_uri", p.tracking_uri,
               "MLflow tracking server for a models:/ model (default: MLFLOW_TRACKING_URI)",
               "tracking-uri");
  c.add_string("model_cache", p.model_cache,
               "folder for registered models' files (default: ~/.cache/catdog/models)",
               "model-cache");
  c.add_double(
      "registry_poll_s", p.registry_poll_s,
      "seconds between checks that a models:/NAME@ALIAS alias has moved (0: on SIGHUP only)", 0.0,
      86400.0, "registry-poll-s");
  c.add_string("model_name", p.model_name,
               "the model's name in the Open Inference Protocol's routes (/v2/models/NAME)",
               "model-name");
  c.add_string("host", p.host, "address to listen on");
  c.add_int("port", p.port, "TCP port; 0 picks a free one", 0, 65535);
  c.add_string("api_key", p.api_key, "require this key on /predict, /predict/batch and /model",
               "api-key");
  c.add_string("api_key_file", p.api_key_file, "read the API key from this file's first line",
               "api-key-file");
  c.add_int("http_threads", p.http_threads,
            "HTTP worker threads for requests in progress (decode and preprocess); idle and "
            "slow connections hold none",
            1, 1024, "http-threads");
  c.add_int("max_batch", p.max_batch, "largest dynamic batch; 0: twice the compute threads", 0, 512,
            "max-batch");
  c.add_double("max_delay_ms", p.max_delay_ms, "longest wait to fill a batch after its first image",
               0.0, 1000.0, "max-delay-ms");
  c.add_int("queue_capacity", p.queue_capacity, "images that may wait for inference before 503", 1,
            100000, "queue-capacity");
  c.add_double("max_body_mb", p.max_body_mb, "largest request body in MB (413 above)", 0.01, 1024.0,
               "max-body-mb");
  c.add_int("max_batch_files", p.max_batch_files, "most images in one /predict/batch request", 1,
            4096, "max-batch-files");
  c.add_double("max_batch_megapixels", p.max_batch_megapixels,
               "pixels across one /predict/batch request's images, from their headers (413 above)",
               0.001, 1e6, "max-batch-megapixels");
  c.add_int("max_pipelined", p.max_pipelined,
            "requests a connection may pipeline ahead of reading its answers (closed above)", 1,
            100000, "max-pipelined");
  c.add_double("max_unread_mb", p.max_unread_mb,
               "MB of answers queued for a client that does not read them (closed above)", 0.0625,
               1024.0, "max-unread-mb");
  c.add_double("write_stall_s", p.write_stall_s,
               "seconds a write to a client may make no progress (closed after)", 0.1, 3600.0,
               "write-stall-s");
  c.add_double("header_timeout_s", p.header_timeout_s,
               "seconds a request's header may take to arrive (408 after)", 0.1, 3600.0,
               "header-timeout-s");
  c.add_int("max_connections", p.max_connections, "open connections at once (503 above)", 1,
            1000000, "max-connections");
  c.add_double("grace_s", p.grace_s, "seconds SIGTERM waits for in-flight requests", 0.0, 3600.0,
               "grace-s");
  c.add_choice("device", p.device, "where to run the model", {"cpu", "cuda", "auto"});
  cd::add_common_options(c, common);
  if (c.parse(argc, argv) == cd::ParseOutcome::k_exit_ok) return 0;
  p.threads = cd::apply_common_options(common);
  cd::input_budget().return_decode_memory = true;  // a burst of large images must not stay resident
  return cd::run_serve(p);
}

}  // namespace

int main(int argc, char** argv) {
  return cd::run_tool("cd-serve", argc, argv, serve_main, cd::MemoryProfile::k_service);
}
