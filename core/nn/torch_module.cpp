// libcatdog_torch.so: the LibTorch runtime as a module that open_predictor()
// (runtime/predictor.cpp) loads with dlopen only when a tool is given a
// catdog model file, so a tool running an .onnx model never maps LibTorch.
// Its one entry point hands over a Predictor; errors are cd:: exceptions.
#include "nn/classifier.h"

extern "C" __attribute__((visibility("default"))) cd::Predictor* catdog_open_torch(
    const char* path, const char* device, int threads, unsigned long long tensor_cache_bytes) {
  return cd::open_torch_predictor(path, {device, threads, tensor_cache_bytes}).release();
}
