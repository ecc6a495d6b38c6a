// Bytes a client sends on one connection, through cd-serve's HTTP layer
// (httplib's parser, the framing checks, chunked and gzip bodies, the
// multipart reader) and the service's routes, with a small real model so
// that /predict and /predict/batch decode, queue and answer. Nothing may
// crash, and every byte written back must be a well-formed HTTP response.
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <string>

#include "cd-serve/http.h"
#include "cd-serve/service.h"
#include "domain/model_file.h"
#include "nn/nets.h"
#include "nn/weights.h"
#include "util/atomic_file.h"
#include "util/log.h"

namespace {

struct Harness {
  std::unique_ptr<cd::serve::Service> service;
  std::unique_ptr<cd::http::Server> server;

  Harness() {
    cd::log::setup("error", "text");
    std::string model = "/tmp/catdog-fuzz-http-" + std::to_string(::getpid()) + ".cdm";
    auto net = cd::build_network("compact", 32);
    cd::ModelMeta meta;
    meta.architecture = "compact";
    meta.preprocess.size = 32;
    cd::write_file_atomic(model, cd::pack_file({cd::FileKind::k_model, cd::meta_to_json(meta),
                                                cd::serialize_module(*net)}));
    cd::ServeParams params;
    params.model = model;
    params.max_batch = 4;
    params.max_delay_ms = 0;
    service = std::make_unique<cd::serve::Service>(params);
    if (!service->load_model()) std::abort();
    ::unlink(model.c_str());
    cd::http::ServerOptions options;
    options.max_body_bytes = 256 << 10;
    options.max_parts = 8;
    server = std::make_unique<cd::http::Server>(options);
    server->handle([this](const cd::http::Request& r) { return service->dispatch(r); },
                   [this](int status, const std::string& reason, const cd::http::Request& r) {
                     return service->on_http_error(status, reason, r);
                   },
                   [this](const cd::http::Request& head) { return service->screen(head); });
  }
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static Harness harness;
  std::string out =
      harness.server->serve_bytes(std::string_view(reinterpret_cast<const char*>(data), size));
  // Whatever came in, what goes out is HTTP responses or nothing.
  if (!out.empty() && out.compare(0, 9, "HTTP/1.1 ") != 0) std::abort();
  if (out.find("\"probability\":null") != std::string::npos) std::abort();
  return 0;
}
