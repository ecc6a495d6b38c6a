#include "runtime/operators.h"

#include <algorithm>
#include <cmath>
#include <optional>
#include <string>
#include <vector>

#include "runtime/axis_matrix.h"
#include "runtime/quantize.h"
#include "util/errors.h"

namespace cd::onednn {

namespace {

dnnl::primitive_attr attr_with(const Activation& act, bool sum) {
  dnnl::primitive_attr attr;
  attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
  dnnl::post_ops ops;
  if (act) ops.append_eltwise(1.f, act.alg, act.alpha, act.beta);
  if (sum) ops.append_sum(1.f);
  attr.set_post_ops(ops);
  return attr;
}

Value conv(PlanBuilder& b, const Op& op, const Value& x) {
  const GraphNode& n = *op.node;
  dims d = x.md.dims();
  if (d.size() != 4) throw ModelError("Conv needs a 4-d input");
  const GraphWeight& w = b.weight(n.inputs.at(1));
  if (w.dims.size() != 4) throw ModelError("a Conv weight must be 4-d");
  const std::int64_t groups = n.int_attr("group", 1), out = w.dims[0];
  const std::int64_t kh = w.dims[2], kw = w.dims[3];
  if (groups < 1 || d[1] % groups || out % groups || w.dims[1] * groups != d[1])
    throw ModelError("a Conv's weight does not match its input's " + std::to_string(d[1]) +
                     " channels");
  auto strides = n.ints_attr("strides", {1, 1});
  auto dil = n.ints_attr("dilations", {1, 1});
  auto pads = n.ints_attr("pads", {0, 0, 0, 0});
  for (int i = 0; i < 4; ++i) pads[i] += op.pads[i];
  std::int64_t ho = (d[2] + pads[0] + pads[2] - ((kh - 1) * dil[0] + 1)) / strides[0] + 1;
  std::int64_t wo = (d[3] + pads[1] + pads[3] - ((kw - 1) * dil[1] + 1)) / strides[1] + 1;
  if (ho < 1 || wo < 1) throw ModelError("a Conv's input is smaller than its kernel");
  dims wdims =
      groups == 1 ? dims{out, d[1], kh, kw} : dims{groups, out / groups, d[1] / groups, kh, kw};
  const Value* residual = nullptr;
  if (!op.sum.empty()) {
    residual = &b.values.at(op.sum);
    if (residual->md.dims() != dims{d[0], out, ho, wo})
      throw ModelError("an Add's operands differ in shape");
  }
  // INT8: every Conv reads and writes channels-last, the layout oneDNN's
  // int8 kernels use, so no reorders are needed between them.
  const tag layout = b.precision == Precision::k_int8 ? tag::nhwc : tag::any;
  std::optional<Int8Conv> q;
  if (std::optional<Int8Input> in = int8_input(b, op)) q = int8_conv(b, n, *in, wdims);
  Activation act = op.act;
  std::optional<Int8Input> emit = q ? int8_output(b, op, act) : std::nullopt;
  memory::desc dst = residual
                         ? residual->md
                         : memory::desc({d[0], out, ho, wo}, emit ? emit->type : k_f32, layout);
  memory::desc bias_md({out}, k_f32, tag::x);
  dnnl::primitive_attr attr = attr_with(act, residual != nullptr);
  if (q) {
    std::vector<float> scales = q->output_scales;
    if (emit)
      for (float& s : scales) s *= emit->scale;
    attr.set_output_scales(1 << 1, scales);
  }
  dnnl::convolution_forward::desc desc(
      dnnl::prop_kind::forward_inference, dnnl::algorithm::convolution_direct,
      memory::desc(d, q ? q->src.type : k_f32, layout),
      memory::desc(wdims, q ? memory::data_type::s8 : k_f32, tag::any), bias_md, dst,
      {strides[0], strides[1]}, {dil[0] - 1, dil[1] - 1}, {pads[0], pads[1]}, {pads[2], pads[3]});
  dnnl::convolution_forward::primitive_desc pd(desc, attr, b.engine());
  int temp;
  // An input the Conv before wrote quantised (int8_output) is read as it is.
  const bool quantise = q && x.md.data_type() == k_f32;
  Value src = quantise ? b.quantized(x, pd.src_desc(), q->src.scale, temp)
                       : b.as_layout(x, pd.src_desc(), temp);
  memory weights = q ? b.constant(n.inputs[1], plain_desc(wdims), pd.weights_desc(), q->weight_attr)
                     : b.constant(n.inputs[1], plain_desc(wdims), pd.weights_desc());
  memory bias = q                     ? q->bias
                : n.inputs.size() > 2 ? b.constant(n.inputs[2], bias_md, bias_md)
                                      : b.zeros(out);
  Value result;
  if (residual) {
    // The sum post-op adds into the residual's buffer, which the result takes.
    result = {pd.dst_desc(), residual->buffer};
    b.share(residual->buffer);
  } else {
    result = b.fresh(pd.dst_desc());
  }
  Step& step = b.add_step<dnnl::convolution_forward>(pd, {{DNNL_ARG_SRC, b.bind(src)},
                                                          {DNNL_ARG_WEIGHTS, weights},
                                                          {DNNL_ARG_BIAS, bias},
                                                          {DNNL_ARG_DST, b.bind(result)}});
  if (b.precision == Precision::k_calibrating)
    step.observed = static_cast<int>(&op - b.ops->data());
  b.release(temp);
  return result;
}

Value gemm(PlanBuilder& b, const Op& op, const Value& x) {
  const GraphNode& n = *op.node;
  if (n.int_attr("transB", 0) != 1 || n.int_attr("transA", 0) != 0 ||
      n.float_attr("alpha", 1.f) != 1.f || n.float_attr("beta", 1.f) != 1.f)
    throw ModelError("the oneDNN runtime runs Gemm as x * W^T + b only");
  int temp;
  Value src = b.as_plain(x, temp);
  dims d = src.md.dims();
  const GraphWeight& w = b.weight(n.inputs.at(1));
  if (d.size() != 2 || w.dims.size() != 2 || w.dims[1] != d[1])
    throw ModelError("a Gemm's weight does not match its input");
  const std::int64_t out = w.dims[0];
  memory::desc bias_md({out}, k_f32, tag::x);
  dnnl::inner_product_forward::desc desc(dnnl::prop_kind::forward_inference, src.md,
                                         memory::desc({out, d[1]}, k_f32, tag::any), bias_md,
                                         plain_desc({d[0], out}));
  dnnl::inner_product_forward::primitive_desc pd(desc, attr_with(op.act, false), b.engine());
  memory weights = b.constant(n.inputs[1], plain_desc({out, d[1]}), pd.weights_desc());
  memory bias = n.inputs.size() > 2 ? b.constant(n.inputs[2], bias_md, bias_md) : b.zeros(out);
  Value result = b.fresh(pd.dst_desc());
  b.add_step<dnnl::inner_product_forward>(pd, {{DNNL_ARG_SRC, b.bind(src)},
                                               {DNNL_ARG_WEIGHTS, weights},
                                               {DNNL_ARG_BIAS, bias},
                                               {DNNL_ARG_DST, b.bind(result)}});
  b.release(temp);
  return result;
}

Value pool(PlanBuilder& b, const GraphNode& n, const Value& x) {
  dims d = x.md.dims();
  if (d.size() != 4) throw ModelError(n.op + " needs a 4-d input");
  bool global = n.op != "MaxPool";
  dims kernel{d[2], d[3]}, strides{1, 1}, pad_l{0, 0}, pad_r{0, 0}, out{d[0], d[1], 1, 1};
  if (!global) {
    auto k = n.ints_attr("kernel_shape", {});
    auto s = n.ints_attr("strides", {1, 1});
    auto p = n.ints_attr("pads", {0, 0, 0, 0});
    if (k.size() != 2 || s.size() != 2 || p.size() != 4)
      throw ModelError("a MaxPool needs a 2-d kernel, strides and pads");
    bool ceil = n.int_attr("ceil_mode", 0) != 0;
    kernel = {k[0], k[1]};
    strides = {s[0], s[1]};
    pad_l = {p[0], p[1]};
    pad_r = {p[2], p[3]};
    for (int i = 0; i < 2; ++i) {
      std::int64_t span = d[2 + i] + p[i] + p[i + 2] - k[i];
      std::int64_t o = (ceil ? (span + s[i] - 1) / s[i] : span / s[i]) + 1;
      // A last window that starts inside the input but runs past its padding.
      pad_r[i] = std::max(pad_r[i], (o - 1) * s[i] + k[i] - d[2 + i] - p[i]);
      out[2 + i] = o;
    }
  }
  // The layout oneDNN picks for the result, global pools too: a plain
  // destination beside a blocked source sends the pool to oneDNN's
  // reference kernel (2 ms of a 16 ms Lite2 image at batch 32); a reader
  // that needs the plain [N, C, 1, 1] reorders it, which costs next to nothing.
  memory::desc dst(out, k_f32, tag::any);
  dnnl::algorithm alg = n.op == "GlobalAveragePool" ? dnnl::algorithm::pooling_avg_exclude_padding
                                                    : dnnl::algorithm::pooling_max;
  dnnl::pooling_forward::desc desc(dnnl::prop_kind::forward_inference, alg, x.md, dst, strides,
                                   kernel, pad_l, pad_r);
  dnnl::primitive_attr attr;
  attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
  dnnl::pooling_forward::primitive_desc pd(desc, attr, b.engine());
  Value result = b.fresh(pd.dst_desc());
  b.add_step<dnnl::pooling_forward>(pd,
                                    {{DNNL_ARG_SRC, b.bind(x)}, {DNNL_ARG_DST, b.bind(result)}});
  return result;
}

Value eltwise(PlanBuilder& b, const Activation& act, const Value& x) {
  dnnl::eltwise_forward::desc desc(dnnl::prop_kind::forward_inference, act.alg, x.md, act.alpha,
                                   act.beta);
  dnnl::primitive_attr attr;
  attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
  dnnl::eltwise_forward::primitive_desc pd(desc, attr, b.engine());
  Value result = b.fresh(pd.dst_desc());
  b.add_step<dnnl::eltwise_forward>(pd,
                                    {{DNNL_ARG_SRC, b.bind(x)}, {DNNL_ARG_DST, b.bind(result)}});
  return result;
}

// Add or Mul; either side may be a constant, broadcast along the batch.
Value binary(PlanBuilder& b, const GraphNode& n) {
  auto operand = [&](const std::string& name, const dims& like, memory& mem) {
    if (b.is_weight(name)) {
      dims wd(b.weight(name).dims.begin(), b.weight(name).dims.end());
      // Broadcast as ONNX does: the constant's dims align to the right.
      dims full(like.size(), 1);
      for (std::size_t i = 0; i < wd.size() && i < full.size(); ++i)
        full[full.size() - 1 - i] = wd[wd.size() - 1 - i];
      memory::desc md = plain_desc(full);
      mem = b.constant(name, md, md);
      return md;
    }
    Value v = b.values.at(name);
    mem = b.bind(v);
    return v.md;
  };
  const std::string& a_name = b.is_weight(n.inputs.at(0)) ? n.inputs.at(1) : n.inputs.at(0);
  const std::string& c_name = a_name == n.inputs[0] ? n.inputs.at(1) : n.inputs[0];
  Value a = b.values.at(a_name);
  int temp = -1;
  memory a_mem = b.bind(a), c_mem;
  memory::desc c_md = operand(c_name, a.md.dims(), c_mem);
  if (!b.is_weight(c_name) && c_md != a.md) {
    Value c = b.as_layout(b.values.at(c_name), a.md, temp);
    c_mem = b.bind(c);
    c_md = c.md;
  }
  dnnl::binary::desc desc(n.op == "Add" ? dnnl::algorithm::binary_add : dnnl::algorithm::binary_mul,
                          a.md, c_md, a.md);
  dnnl::primitive_attr attr;
  attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
  dnnl::binary::primitive_desc pd(desc, attr, b.engine());
  Value result = b.fresh(a.md);
  b.add_step<dnnl::binary>(
      pd, {{DNNL_ARG_SRC_0, a_mem}, {DNNL_ARG_SRC_1, c_mem}, {DNNL_ARG_DST, b.bind(result)}});
  b.release(temp);
  return result;
}

Value concat(PlanBuilder& b, const GraphNode& n) {
  std::int64_t axis = n.int_attr("axis", 1);
  std::vector<memory::desc> mds;
  std::unordered_map<int, memory> args;
  std::vector<int> temps;
  for (std::size_t i = 0; i < n.inputs.size(); ++i) {
    int temp;
    Value v = b.as_plain(b.values.at(n.inputs[i]), temp);
    temps.push_back(temp);
    mds.push_back(v.md);
    args[DNNL_ARG_MULTIPLE_SRC + static_cast<int>(i)] = b.bind(v);
  }
  if (axis < 0 || axis >= static_cast<std::int64_t>(mds.at(0).dims().size()))
    throw ModelError("a Concat's axis is out of range");
  dims out = mds[0].dims();
  out[axis] = 0;
  for (const auto& md : mds) out[axis] += md.dims()[axis];
  dnnl::primitive_attr attr;
  attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
  dnnl::concat::primitive_desc pd(plain_desc(out), static_cast<int>(axis), mds, b.engine(), attr);
  Value result = b.fresh(pd.dst_desc());
  args[DNNL_ARG_DST] = b.bind(result);
  b.add_step<dnnl::concat>(pd, std::move(args));
  for (int t : temps) b.release(t);
  return result;
}

// A permutation of the axes: a reorder from the input read in the output's order.
Value transpose(PlanBuilder& b, const GraphNode& n, const Value& x) {
  int temp;
  Value src = b.as_plain(x, temp);
  dims d = src.md.dims();
  auto perm = n.ints_attr("perm", {});
  if (perm.size() != d.size()) throw ModelError("a Transpose's perm does not match its input");
  dims strides(d.size()), out(d.size()), view_strides(d.size());
  std::int64_t s = 1;
  for (std::size_t i = d.size(); i-- > 0;) {
    strides[i] = s;
    s *= d[i];
  }
  for (std::size_t i = 0; i < d.size(); ++i) {
    if (perm[i] < 0 || perm[i] >= static_cast<std::int64_t>(d.size()))
      throw ModelError("a Transpose's perm is out of range");
    out[i] = d[perm[i]];
    view_strides[i] = strides[perm[i]];
  }
  Value view{memory::desc(out, k_f32, view_strides), src.buffer};
  Value result = b.fresh(plain_desc(out));
  memory from = b.bind(view), into = b.bind(result);
  dnnl::reorder::primitive_desc pd(b.engine(), view.md, b.engine(), result.md);
  b.add_step<dnnl::reorder>(pd, {{DNNL_ARG_FROM, from}, {DNNL_ARG_TO, into}});
  b.release(temp);
  return result;
}

// Flatten from axis 1: the plain bytes, viewed as [N, rest].
Value flatten(PlanBuilder& b, const GraphNode& n, const Value& x) {
  if (n.int_attr("axis", 1) != 1) throw ModelError("the oneDNN runtime flattens from axis 1 only");
  int temp;
  Value src = b.as_plain(x, temp);
  dims d = src.md.dims();
  Value result{plain_desc({d[0], product(d) / d[0]}), src.buffer};
  // Shares the input's buffer, or keeps the reordered copy as its own.
  if (temp < 0 && src.buffer >= 0) b.share(src.buffer);
  return result;
}

}  // namespace

// A 1x1 Conv and the depthwise 3x3 Conv after it (fuse() marked the pair)
// as one primitive, oneDNN's depthwise post-op: the expanded activation
// between them, the largest of an inverted-residual block, is never
// written out. Only where that activation is large: measured on 2 cores
// (oneDNN 2.6, f32), the pair took 23.2 -> 17.2 ms at batch 32 and 0.88 ->
// 0.50 ms at batch 1 with 96 x 150 x 150 floats (8.6 MB per image), 12.9
// -> 12.5 and 0.48 -> 0.39 ms with 144 x 75 x 75 (3.2 MB), and 12.5 ->
// 12.7 ms at batch 32 with 720 x 19 x 19 (1 MB). Nothing (the caller runs
// the two apart) where the sizes or oneDNN do not allow it.
std::optional<Value> conv_with_depthwise(PlanBuilder& b, const Op& op, const Op& dw,
                                         const Value& x) {
  static constexpr std::int64_t k_min_bytes = std::int64_t{2} << 20;
  const dims d = x.md.dims();
  const GraphWeight& w = b.weight(op.node->inputs.at(1));
  const GraphWeight& wd = b.weight(dw.node->inputs.at(1));
  if (d.size() != 4 || w.dims[1] != d[1]) return std::nullopt;
  const std::int64_t out = w.dims[0], stride = dw.node->ints_attr("strides", {1, 1})[0];
  if (out * d[2] * d[3] * static_cast<std::int64_t>(sizeof(float)) < k_min_bytes)
    return std::nullopt;
  // The post-op pads left and top by `pad` and computes ceil(H / stride)
  // rows: the depthwise Conv's own padding must come to the same.
  auto pads = dw.node->ints_attr("pads", {0, 0, 0, 0});
  for (int i = 0; i < 4; ++i) pads[i] += dw.pads[i];
  const std::int64_t pad = pads[0];
  auto rows = [&](std::int64_t in, std::int64_t before, std::int64_t after) {
    return (in + before + after - 3) / stride + 1;
  };
  if (pads[1] != pad || pad > 1 || rows(d[2], pads[0], pads[2]) != (d[2] + stride - 1) / stride ||
      rows(d[3], pads[1], pads[3]) != (d[3] + stride - 1) / stride)
    return std::nullopt;
  dnnl::primitive_attr attr;
  attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
  dnnl::post_ops ops;
  if (op.act) ops.append_eltwise(1.f, op.act.alg, op.act.alpha, op.act.beta);
  ops.append_dw(k_f32, k_f32, k_f32, 3, stride, pad, 0, {});
  if (dw.act) ops.append_eltwise(1.f, dw.act.alg, dw.act.alpha, dw.act.beta);
  attr.set_post_ops(ops);
  memory::desc bias_md({out}, k_f32, tag::x);
  dnnl::convolution_forward::primitive_desc pd;
  try {
    pd = dnnl::convolution_forward::primitive_desc(
        {dnnl::prop_kind::forward_inference,
         dnnl::algorithm::convolution_direct,
         memory::desc(d, k_f32, tag::any),
         memory::desc({out, d[1], 1, 1}, k_f32, tag::any),
         bias_md,
         memory::desc({d[0], out, d[2], d[3]}, k_f32, tag::any),
         {1, 1},
         {0, 0},
         {0, 0}},
        attr, b.engine());
  } catch (const dnnl::error&) {
    return std::nullopt;  // no fused implementation for these shapes
  }
  const memory::desc dw_weights_md =
      pd.query_md(dnnl::query::exec_arg_md, DNNL_ARG_ATTR_POST_OP_DW | DNNL_ARG_WEIGHTS);
  const memory::desc dw_bias_md =
      pd.query_md(dnnl::query::exec_arg_md, DNNL_ARG_ATTR_POST_OP_DW | DNNL_ARG_BIAS);
  if (static_cast<std::size_t>(product(dw_weights_md.dims())) != wd.count()) return std::nullopt;
  int temp;
  Value src = b.as_layout(x, pd.src_desc(), temp);
  memory weights = b.constant(op.node->inputs[1], plain_desc({out, d[1], 1, 1}), pd.weights_desc());
  memory bias =
      op.node->inputs.size() > 2 ? b.constant(op.node->inputs[2], bias_md, bias_md) : b.zeros(out);
  memory dw_weights = b.constant(dw.node->inputs[1], plain_desc({out, 1, 1, 3, 3}), dw_weights_md);
  memory dw_bias = dw.node->inputs.size() > 2 ? b.constant(dw.node->inputs[2], bias_md, dw_bias_md)
                                              : b.zeros(out);
  Value result = b.fresh(pd.dst_desc());
  b.add_step<dnnl::convolution_forward>(pd,
                                        {{DNNL_ARG_SRC, b.bind(src)},
                                         {DNNL_ARG_WEIGHTS, weights},
                                         {DNNL_ARG_BIAS, bias},
                                         {DNNL_ARG_ATTR_POST_OP_DW | DNNL_ARG_WEIGHTS, dw_weights},
                                         {DNNL_ARG_ATTR_POST_OP_DW | DNNL_ARG_BIAS, dw_bias},
                                         {DNNL_ARG_DST, b.bind(result)}});
  b.release(temp);
  return result;
}

Value compute(PlanBuilder& b, const Op& op) {
  const GraphNode& n = *op.node;
  auto in = [&](std::size_t k) -> const Value& {
    auto it = b.values.find(op.inputs.at(k));
    if (it == b.values.end())
      throw ModelError(n.op + " reads '" + op.inputs[k] + "', which is not an activation");
    return it->second;
  };
  if (!op.axis_matrices.empty()) return axis_matrices(b, op, in(0));
  if (n.op == "Conv") return conv(b, op, in(0));
  if (n.op == "Gemm") return gemm(b, op, in(0));
  if (activation_of(n)) return eltwise(b, activation_of(n), in(0));
  if (n.op == "MaxPool" || n.op == "GlobalAveragePool" || n.op == "GlobalMaxPool")
    return pool(b, n, in(0));
  if (n.op == "Flatten") return flatten(b, n, in(0));
  if (n.op == "Concat") return concat(b, n);
  if (n.op == "Add" || n.op == "Mul") return binary(b, n);
  if (n.op == "Transpose") return transpose(b, n, in(0));
  throw ModelError("operator " + n.op + " is not one the oneDNN runtime runs");
}

}  // namespace cd::onednn
