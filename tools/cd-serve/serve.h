// cd-serve: the HTTP inference service. Routes /health, /ready, /predict,
// /predict/batch, /model, /metrics, /openapi.json, /docs and / (a page for
// people). Dynamic batching on one inference worker, a bounded queue,
// graceful drain on SIGTERM, hot reload on SIGHUP, JSON errors throughout.
#pragma once

#include <string>

#include "domain/labels.h"

namespace cd {

struct ServeParams {
  std::string model = k_default_model_path;
  std::string host = "0.0.0.0";
  int port = 8000;
  // A models:/NAME@ALIAS model: the tracking server (default MLFLOW_TRACKING_URI),
  // the folder its files are kept in, and how often to follow the alias (0: on SIGHUP only).
  std::string tracking_uri;
  std::string model_cache;
  double registry_poll_s = 0;
  std::string model_name = "catdog";  // the Open Inference Protocol's /v2/models/NAME
  std::string api_key;                // also CD_API_KEY
  std::string api_key_file;           // first line is the key
  int http_threads = 128;             // workers for requests in progress; admission bounds the work
  int max_batch = 0;                  // 0: resolve_max_batch() picks it from the core count
  double max_delay_ms = 5.0;
  int queue_capacity = 256;
  double max_body_mb = 10.0;
  int max_batch_files = 64;
  // Pixels across all of one /predict/batch request's images, from their
  // headers before any is decoded: each part may be under the per-image
  // budget, yet 64 of 36 MP cost 15 s of decoding.
  double max_batch_megapixels = 256;
  // Per connection: requests answered while the client had not read the
  // answers before them, and response bytes queued in the kernel for it.
  // Past either, the connection closes (a client that never reads).
  int max_pipelined = 32;
  double max_unread_mb = 1.0;
  double write_stall_s = 2.0;
  double header_timeout_s = 10.0;  // a request's header must arrive within this
  int max_connections = 4096;      // open connections; more get 503
  double grace_s = 20.0;
  int threads = 0;             // compute threads; 0: every core
  std::string device = "cpu";  // cpu|cuda|auto (a .cdm model); .onnx runs on the CPU
};

// Blocks SIGTERM, SIGINT and SIGHUP in the calling thread and every thread it
// starts later, for run_serve to take with sigwait. cd-serve's main calls it
// first, before LibTorch or anything else can start a thread.
void block_serve_signals();

// Blocks until SIGTERM/SIGINT has drained the server; returns the exit code.
int run_serve(const ServeParams& params);

}  // namespace cd
