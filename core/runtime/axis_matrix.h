// A matrix applied along the width (and then the height) of an NCHW value:
// how the exported graphs write an image's mirror and resize (Transposes
// around 1x1 Convs, which fusion.h's fuse() turns into one Op), run as
// catdog's own loops over the matrices' nonzeros. Internal to cd::runtime.
#pragma once

#include "runtime/fusion.h"
#include "runtime/plan.h"

namespace cd::onednn {

// Op's axis_matrices on x (any layout; read plain): one step, its result
// plain NCHW. Throws ModelError for a matrix that does not fit x.
Value axis_matrices(PlanBuilder& b, const Op& op, const Value& x);

}  // namespace cd::onednn
