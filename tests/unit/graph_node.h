#pragma once
// One inference-graph node in one expression, for the runtime's tests.

#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "runtime/graph.h"

namespace cd::test {

inline cd::GraphNode node(std::string op, std::vector<std::string> in, std::string out,
                          std::map<std::string, std::vector<std::int64_t>> ints = {},
                          std::map<std::string, float> floats = {}) {
  return {std::move(op), std::move(in), std::move(out), std::move(ints), std::move(floats)};
}

}  // namespace cd::test
