// Catch2 for test files that also include LibTorch headers: glog (pulled in
// by c10) defines its own CHECK macro, which would silently replace Catch's
// and abort instead of reporting. Include this instead of catch.hpp there.
#pragma once

#include <ATen/ATen.h>
#include <torch/nn/module.h>

#undef CHECK
#include <catch2/catch.hpp>
