// The oneDNN runtime's operators: each checks one node of the folded graph
// (runtime/fusion.h's Op, with the activation, residual Add and Pad fused
// into it), asks oneDNN for a primitive, and adds its steps to the plan
// being built (runtime/plan.h). Convolutions of any group, stride and
// padding, Gemm, pooling, Concat, Transpose, Flatten and elementwise ops.
// Internal to cd::runtime.
#pragma once

#include <optional>

#include "runtime/fusion.h"
#include "runtime/plan.h"

namespace cd::onednn {

// The step(s) computing `op`'s output, whose inputs are in b.values.
// Throws ModelError for an operator or attribute this runtime lacks.
Value compute(PlanBuilder& b, const Op& op);

// A 1x1 Conv and the depthwise 3x3 Conv after it (fuse() marked the pair)
// as one primitive, or nothing where that does not pay or oneDNN cannot:
// the caller then runs the two apart.
std::optional<Value> conv_with_depthwise(PlanBuilder& b, const Op& op, const Op& dw,
                                         const Value& x);

}  // namespace cd::onednn
