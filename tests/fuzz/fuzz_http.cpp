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

#include "cd-serve/http/http.h"
#include "cd-serve/service.h"
#include "domain/model_file.h"
#include "runtime/graph.h"
#include "util/atomic_file.h"
#include "util/log.h"

namespace {

// A small model file of format 3 whose inference graph is written here, so the
// service runs it on the oneDNN runtime and this harness needs no LibTorch:
// Conv 3x3 (4 channels) -> Relu -> global average pool -> Gemm -> Sigmoid.
std::string small_model_file() {
  cd::InferenceGraph g;
  auto weight = [&](const std::string& name, std::vector<std::int64_t> dims, float value) {
    std::size_t n = 1;
    for (std::int64_t d : dims) n *= static_cast<std::size_t>(d);
    g.weights[name] = {std::move(dims), std::vector<float>(n, value)};
  };
  weight("w0", {4, 3, 3, 3}, 0.05f);
  weight("b0", {4}, 0.1f);
  weight("wf", {1, 4}, 0.5f);
  weight("bf", {1}, -0.1f);
  auto node = [&](std::string op, std::vector<std::string> in, std::string out) -> cd::GraphNode& {
    g.nodes.push_back({std::move(op), std::move(in), std::move(out), {}, {}});
    return g.nodes.back();
  };
  node("Conv", {g.input, "w0", "b0"}, "c0").ints = {{"pads", {1, 1, 1, 1}},
                                                    {"kernel_shape", {3, 3}}};
  node("Relu", {"c0"}, "r0");
  node("GlobalAveragePool", {"r0"}, "p0");
  node("Flatten", {"p0"}, "f0");
  node("Gemm", {"f0", "wf", "bf"}, "logit").ints = {{"transB", {1}}};
  node("Sigmoid", {"logit"}, "p_dog");
  g.output = "p_dog";
  cd::ModelMeta meta;
  meta.architecture = "compact";
  meta.preprocess.size = 32;
  return cd::pack_file({cd::FileKind::k_model, cd::meta_to_json(meta), "", cd::write_graph(g)});
}

struct Harness {
  std::unique_ptr<cd::serve::Service> service;
  std::unique_ptr<cd::http::Server> server;

  Harness() {
    cd::log::setup("error", "text");
    std::string model = "/tmp/catdog-fuzz-http-" + std::to_string(::getpid()) + ".cdm";
    cd::write_file_atomic(model, small_model_file());
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
