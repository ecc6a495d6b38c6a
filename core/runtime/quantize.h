// INT8 in the oneDNN runtime's plans (runtime/executor.h's calibrate and
// quantize): which Convs run on 8-bit data, how their inputs, weights and
// bias are quantised, and where a Conv writes its result already quantised
// for the one 8-bit Conv that reads it. Internal to cd::runtime.
#pragma once

#include <optional>
#include <vector>

#include "runtime/fusion.h"
#include "runtime/plan.h"

namespace cd::onednn {

// How a Conv's input is quantised in INT8: u8 where it was never negative
// in calibration, else s8; value x is round(x * scale). Its weights are
// quantised per output channel to +-weight_reach.
struct Int8Input {
  memory::data_type type;
  float scale;
  float weight_reach = 127.f;
};

// A Conv on 8-bit data: its weights and bias quantised, and the scales back to f32.
struct Int8Conv {
  Int8Input src;
  dnnl::primitive_attr weight_attr;  // the weights' reorder: times reach / max |w| per channel
  std::vector<float> output_scales;  // per output channel: 1 / (src.scale * weight scale)
  memory bias;  // in the accumulator's units: oneDNN 2.x adds it before the output scale
};

// INT8 runs a Conv on 8-bit data where its input was calibrated and it is
// dense (group 1) or depthwise (a group per channel).
std::optional<Int8Input> int8_input(const PlanBuilder& b, const Op& op);

// Where a Conv's result is read by one Conv alone, and that one runs on
// 8-bit data, the first writes its result quantised as the second reads it:
// no reorder between them. Its activation then runs on scaled values, so
// a Clip's bounds are scaled too.
std::optional<Int8Input> int8_output(const PlanBuilder& b, const Op& op, Activation& act);

// Conv `n` on 8-bit data read as `src`: its weights' per-channel scales, its
// bias in the accumulator's units, and the scales back to f32.
Int8Conv int8_conv(PlanBuilder& b, const GraphNode& n, const Int8Input& src, const dims& wdims);

}  // namespace cd::onednn
