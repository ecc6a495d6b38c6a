#include "runtime/executor.h"

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <functional>
#include <map>
#include <mutex>
#include <numeric>
#include <optional>
#include <tuple>
#include <type_traits>
#include <unordered_map>
#include <utility>

#include <spdlog/spdlog.h>
#include <dnnl.hpp>

#include "runtime/fusion.h"
#include "util/errors.h"
#include "util/parallel.h"

// oneDNN's CPU runtime is OpenMP (Debian's libdnnl2 links libgomp); the
// thread count is a per-thread setting of the caller's.
extern "C" void omp_set_num_threads(int);
extern "C" int omp_get_max_threads();

namespace cd {

namespace {

using dnnl::memory;
using dims = memory::dims;
using tag = memory::format_tag;
constexpr auto k_f32 = memory::data_type::f32;
constexpr std::size_t k_max_plans = 16;

// A value while a plan is built: its layout and the buffer holding it.
struct Value {
  memory::desc md;
  int buffer = -1;  // -1: the caller's input
};

struct Step {
  dnnl::primitive prim;
  std::unordered_map<int, memory> args;
};

struct Plan {
  memory input;
  std::vector<Step> steps;
  std::vector<std::pair<memory, int>> bound;  // memory -> buffer it points into
  std::vector<memory> input_views;            // pointed at the caller's input too
  std::vector<memory> scratch;                // pointed at the scratchpad
  std::vector<std::size_t> buffer_bytes;
  std::size_t scratch_bytes = 0;
  int output_buffer = -1;
  std::int64_t width = 0;
};

memory::desc plain_desc(const dims& d) {
  static const tag by_rank[] = {tag::undef, tag::a, tag::ab, tag::abc, tag::abcd, tag::abcde};
  return memory::desc(d, k_f32, by_rank[std::min<std::size_t>(d.size(), 5)]);
}

std::int64_t product(const dims& d) {
  return std::accumulate(d.begin(), d.end(), std::int64_t{1}, std::multiplies<>());
}

}  // namespace

class GraphExecutor::Impl {
 public:
  Impl(InferenceGraph graph, int threads)
      : m_graph(std::move(graph)), m_ops(fuse(m_graph)), m_threads(threads) {
    static const char* known[] = {
        "Conv",          "Relu",    "LeakyRelu", "Clip",   "Pad", "MaxPool", "GlobalAveragePool",
        "GlobalMaxPool", "Flatten", "Gemm",      "Concat", "Add", "Mul",     "Sigmoid",
        "Transpose"};
    for (const GraphNode& n : m_graph.nodes)
      if (std::find(std::begin(known), std::end(known), n.op) == std::end(known))
        throw ModelError("operator " + n.op + " is not one the oneDNN runtime runs");
  }

  std::vector<float> run(const float* input, std::int64_t n, std::int64_t side) {
    std::lock_guard<std::mutex> lock(m_mutex);
    if (m_threads > 0) omp_set_num_threads(m_threads);
    auto found = m_plans.find({n, side});
    const bool first = found == m_plans.end();
    auto t0 = std::chrono::steady_clock::now();
    if (first) {
      if (m_plans.size() >= k_max_plans) m_plans.clear();
      found = m_plans.emplace(std::make_pair(n, side), build(n, side)).first;
    }
    auto t1 = std::chrono::steady_clock::now();
    Plan& plan = found->second;
    if (m_buffers.size() < plan.buffer_bytes.size()) m_buffers.resize(plan.buffer_bytes.size());
    for (std::size_t b = 0; b < plan.buffer_bytes.size(); ++b)
      m_buffers[b].reserve(plan.buffer_bytes[b]);
    m_scratch.reserve(plan.scratch_bytes);
    for (auto& [mem, b] : plan.bound) mem.set_data_handle(m_buffers[b].data());
    for (auto& mem : plan.scratch) mem.set_data_handle(m_scratch.data());
    plan.input.set_data_handle(const_cast<float*>(input));
    for (auto& mem : plan.input_views) mem.set_data_handle(const_cast<float*>(input));
    for (Step& step : plan.steps) step.prim.execute(m_stream, step.args);
    m_stream.wait();
    if (first) {  // --log-level debug: where a cold start's time goes
      using ms = std::chrono::duration<double, std::milli>;
      spdlog::debug(
          "runtime: plan for batch {} at {} built in {:.1f} ms ({} steps, weights "
          "reordered); its first forward {:.1f} ms",
          n, side, ms(t1 - t0).count(), plan.steps.size(),
          ms(std::chrono::steady_clock::now() - t1).count());
    }
    const auto* out = static_cast<const float*>(m_buffers[plan.output_buffer].data());
    return std::vector<float>(out, out + n * plan.width);
  }

  void own_weights() {
    std::lock_guard<std::mutex> lock(m_mutex);
    for (auto& [name, w] : m_graph.weights) {
      if (!w.borrowed) continue;
      w.values.assign(w.borrowed, w.borrowed + w.borrowed_count);
      w.borrowed = nullptr;
      w.borrowed_count = 0;
    }
    m_graph.backing.reset();
  }

  std::size_t plans() const {
    std::lock_guard<std::mutex> lock(m_mutex);
    return m_plans.size();
  }

  std::size_t working_bytes() const {
    std::lock_guard<std::mutex> lock(m_mutex);
    std::size_t total = m_scratch.size();
    for (const Buffer& b : m_buffers) total += b.size();
    return total;
  }

 private:
  // A 64-byte aligned block that only grows.
  class Buffer {
   public:
    void reserve(std::size_t bytes) {
      if (bytes <= m_size) return;
      std::size_t rounded = (bytes + 63) / 64 * 64;
      m_data.reset(static_cast<char*>(std::aligned_alloc(64, rounded)));
      if (!m_data) throw std::bad_alloc();
      m_size = rounded;
    }
    void* data() const { return m_data.get(); }
    std::size_t size() const { return m_size; }

   private:
    struct Free {
      void operator()(char* p) const { std::free(p); }
    };
    std::unique_ptr<char, Free> m_data;
    std::size_t m_size = 0;
  };

  // The state of one plan as it is built.
  struct Builder {
    Plan plan;
    std::map<std::string, Value> values;
    std::vector<int> refs;   // per buffer: values (and temporaries) holding it
    std::vector<char> free;  // per buffer: reusable now
    std::map<std::string, std::size_t> last_read;  // value -> index of its last reader op
    // Work that waits for the walk to end and then runs on every thread: each
    // step's primitive (its JIT code) and each weight's reorder. Independent,
    // so a cold start builds its plan on all cores instead of one.
    std::vector<std::function<void()>> jobs;
    // Constants this build reorders: kept (m_constants) once its jobs have run.
    std::vector<std::tuple<std::string, memory::desc, memory>> constants;
  };

  memory::desc weight_desc(const std::string& name) const {
    const GraphWeight& w = weight(name);
    return plain_desc(dims(w.dims.begin(), w.dims.end()));
  }

  const GraphWeight& weight(const std::string& name) const {
    auto it = m_graph.weights.find(name);
    if (it == m_graph.weights.end()) throw ModelError("the graph has no weight '" + name + "'");
    return it->second;
  }

  // A buffer for `bytes`: a free one (grown if need be), or a new one.
  int take(Builder& b, std::size_t bytes) {
    int best = -1;
    for (std::size_t i = 0; i < b.free.size(); ++i) {
      if (!b.free[i]) continue;
      if (best < 0 ||
          (b.plan.buffer_bytes[i] >= bytes && (b.plan.buffer_bytes[best] < bytes ||
                                               b.plan.buffer_bytes[i] < b.plan.buffer_bytes[best])))
        best = static_cast<int>(i);
    }
    if (best < 0) {
      best = static_cast<int>(b.free.size());
      b.free.push_back(0);
      b.refs.push_back(0);
      b.plan.buffer_bytes.push_back(0);
    }
    b.free[best] = 0;
    b.refs[best] = 1;
    b.plan.buffer_bytes[best] = std::max(b.plan.buffer_bytes[best], bytes);
    return best;
  }

  void release(Builder& b, int buffer) {
    if (buffer < 0) return;
    if (--b.refs[buffer] == 0) b.free[buffer] = 1;
  }

  memory bind(Builder& b, const Value& v) {
    if (v.buffer < 0 && v.md == b.plan.input.get_desc()) return b.plan.input;
    memory m(v.md, m_engine, DNNL_MEMORY_NONE);
    if (v.buffer < 0) {  // the caller's input, read another way (a Transpose's view)
      b.plan.input_views.push_back(m);
      return m;
    }
    b.plan.bound.emplace_back(m, v.buffer);
    return m;
  }

  // A value in a fresh buffer of its own.
  Value fresh(Builder& b, const memory::desc& md) { return {md, take(b, md.get_size())}; }

  dnnl::primitive_attr attr_with(const Activation& act, bool sum) {
    dnnl::primitive_attr attr;
    attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
    dnnl::post_ops ops;
    if (act) ops.append_eltwise(1.f, act.alg, act.alpha, act.beta);
    if (sum) ops.append_sum(1.f);
    attr.set_post_ops(ops);
    return attr;
  }

  // Adds a step; its scratchpad (if any) shares the plan's one.
  template <class Prim, class Pd>
  void add_step(Builder& b, const Pd& pd, std::unordered_map<int, memory> args) {
    memory::desc scratch = pd.scratchpad_desc();
    if (scratch.get_size() > 0) {
      memory m(scratch, m_engine, DNNL_MEMORY_NONE);
      b.plan.scratch.push_back(m);
      b.plan.scratch_bytes = std::max(b.plan.scratch_bytes, scratch.get_size());
      args[DNNL_ARG_SCRATCHPAD] = m;
    }
    std::size_t at = b.plan.steps.size();
    b.plan.steps.push_back({dnnl::primitive(), std::move(args)});
    b.jobs.push_back([this, &steps = b.plan.steps, at, pd] {
      steps[at].prim = Prim(pd);
      if constexpr (std::is_same_v<Prim, dnnl::inner_product_forward>) dry_run(steps[at].prim, pd);
    });
  }

  // oneDNN's gemm-based inner product generates its kernel at its first
  // execution (2 ms of a cold start's first forward pass for a 1840-wide
  // head): a run on zeros here takes that into the build, on a free core.
  void dry_run(const dnnl::primitive& prim, const dnnl::inner_product_forward::primitive_desc& pd) {
    auto zeroed = [&](const memory::desc& md) {
      memory m(md, m_engine);
      if (md.get_size() > 0) std::memset(m.get_data_handle(), 0, md.get_size());
      return m;
    };
    std::unordered_map<int, memory> args{{DNNL_ARG_SRC, zeroed(pd.src_desc())},
                                         {DNNL_ARG_WEIGHTS, zeroed(pd.weights_desc())},
                                         {DNNL_ARG_BIAS, zeroed(pd.bias_desc())},
                                         {DNNL_ARG_DST, zeroed(pd.dst_desc())}};
    if (pd.scratchpad_desc().get_size() > 0)
      args[DNNL_ARG_SCRATCHPAD] = zeroed(pd.scratchpad_desc());
    dnnl::stream stream(m_engine);
    prim.execute(stream, args);
    stream.wait();
  }

  // `v` in layout `want`: itself, or a reorder into a temporary buffer,
  // which the caller releases after its step.
  Value as_layout(Builder& b, const Value& v, const memory::desc& want, int& temp) {
    temp = -1;
    if (want == v.md) return v;
    Value to = fresh(b, want);
    temp = to.buffer;
    memory from = bind(b, v), into = bind(b, to);
    dnnl::reorder::primitive_desc pd(m_engine, v.md, m_engine, want);
    add_step<dnnl::reorder>(b, pd, {{DNNL_ARG_FROM, from}, {DNNL_ARG_TO, into}});
    return to;
  }

  Value as_plain(Builder& b, const Value& v, int& temp) {
    return as_layout(b, v, plain_desc(v.md.dims()), temp);
  }

  // A constant in the layout `want`, reordered once and kept.
  memory constant(Builder& b, const std::string& name, const memory::desc& plain,
                  const memory::desc& want) {
    auto known = m_constants.find(name);
    if (known != m_constants.end())
      for (auto& [md, mem] : known->second)
        if (md == want) return mem;
    for (auto& [pending, md, mem] : b.constants)
      if (pending == name && md == want) return mem;
    const GraphWeight& w = weight(name);
    if (static_cast<std::size_t>(product(plain.dims())) != w.count())
      throw ModelError("weight '" + name + "' has " + std::to_string(w.count()) +
                       " values, not the shape its operator needs");
    memory src(plain, m_engine, const_cast<float*>(w.data()));
    memory dst(want, m_engine);
    b.jobs.push_back([this, src, dst, copy = want == plain]() mutable {
      if (copy) {
        std::memcpy(dst.get_data_handle(), src.get_data_handle(), dst.get_desc().get_size());
        return;
      }
      dnnl::stream stream(m_engine);
      dnnl::reorder(src, dst).execute(stream, src, dst);
      stream.wait();
    });
    b.constants.emplace_back(name, want, dst);
    return dst;
  }

  Value conv(Builder& b, const Op& op, const Value& x) {
    const GraphNode& n = *op.node;
    dims d = x.md.dims();
    if (d.size() != 4) throw ModelError("Conv needs a 4-d input");
    const GraphWeight& w = weight(n.inputs.at(1));
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
    memory::desc dst = residual ? residual->md : memory::desc({d[0], out, ho, wo}, k_f32, tag::any);
    memory::desc bias_md({out}, k_f32, tag::x);
    dnnl::convolution_forward::desc desc(
        dnnl::prop_kind::forward_inference, dnnl::algorithm::convolution_direct,
        memory::desc(d, k_f32, tag::any), memory::desc(wdims, k_f32, tag::any), bias_md, dst,
        {strides[0], strides[1]}, {dil[0] - 1, dil[1] - 1}, {pads[0], pads[1]}, {pads[2], pads[3]});
    dnnl::convolution_forward::primitive_desc pd(desc, attr_with(op.act, residual != nullptr),
                                                 m_engine);
    int temp;
    Value src = as_layout(b, x, pd.src_desc(), temp);
    memory weights = constant(b, n.inputs[1], plain_desc(wdims), pd.weights_desc());
    memory bias = n.inputs.size() > 2 ? constant(b, n.inputs[2], bias_md, bias_md) : zeros(out);
    Value result;
    if (residual) {
      // The sum post-op adds into the residual's buffer, which the result takes.
      result = {pd.dst_desc(), residual->buffer};
      ++b.refs[residual->buffer];
    } else {
      result = fresh(b, pd.dst_desc());
    }
    add_step<dnnl::convolution_forward>(b, pd,
                                        {{DNNL_ARG_SRC, bind(b, src)},
                                         {DNNL_ARG_WEIGHTS, weights},
                                         {DNNL_ARG_BIAS, bias},
                                         {DNNL_ARG_DST, bind(b, result)}});
    release(b, temp);
    return result;
  }

  // A 1x1 Conv and the depthwise 3x3 Conv after it (fuse() marked the pair)
  // as one primitive, oneDNN's depthwise post-op: the expanded activation
  // between them, the largest of an inverted-residual block, is never
  // written out. Only where that activation is large: measured on 2 cores
  // (oneDNN 2.6, f32), the pair took 23.2 -> 17.2 ms at batch 32 and 0.88 ->
  // 0.50 ms at batch 1 with 96 x 150 x 150 floats (8.6 MB per image), 12.9
  // -> 12.5 and 0.48 -> 0.39 ms with 144 x 75 x 75 (3.2 MB), and 12.5 ->
  // 12.7 ms at batch 32 with 720 x 19 x 19 (1 MB). Nothing (the caller runs
  // the two apart) where the sizes or oneDNN do not allow it.
  std::optional<Value> conv_with_depthwise(Builder& b, const Op& op, const Op& dw, const Value& x) {
    static constexpr std::int64_t k_min_bytes = std::int64_t{2} << 20;
    const dims d = x.md.dims();
    const GraphWeight& w = weight(op.node->inputs.at(1));
    const GraphWeight& wd = weight(dw.node->inputs.at(1));
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
          attr, m_engine);
    } catch (const dnnl::error&) {
      return std::nullopt;  // no fused implementation for these shapes
    }
    const memory::desc dw_weights_md =
        pd.query_md(dnnl::query::exec_arg_md, DNNL_ARG_ATTR_POST_OP_DW | DNNL_ARG_WEIGHTS);
    const memory::desc dw_bias_md =
        pd.query_md(dnnl::query::exec_arg_md, DNNL_ARG_ATTR_POST_OP_DW | DNNL_ARG_BIAS);
    if (static_cast<std::size_t>(product(dw_weights_md.dims())) != wd.count()) return std::nullopt;
    int temp;
    Value src = as_layout(b, x, pd.src_desc(), temp);
    memory weights =
        constant(b, op.node->inputs[1], plain_desc({out, d[1], 1, 1}), pd.weights_desc());
    memory bias =
        op.node->inputs.size() > 2 ? constant(b, op.node->inputs[2], bias_md, bias_md) : zeros(out);
    memory dw_weights =
        constant(b, dw.node->inputs[1], plain_desc({out, 1, 1, 3, 3}), dw_weights_md);
    memory dw_bias = dw.node->inputs.size() > 2
                         ? constant(b, dw.node->inputs[2], bias_md, dw_bias_md)
                         : zeros(out);
    Value result = fresh(b, pd.dst_desc());
    add_step<dnnl::convolution_forward>(b, pd,
                                        {{DNNL_ARG_SRC, bind(b, src)},
                                         {DNNL_ARG_WEIGHTS, weights},
                                         {DNNL_ARG_BIAS, bias},
                                         {DNNL_ARG_ATTR_POST_OP_DW | DNNL_ARG_WEIGHTS, dw_weights},
                                         {DNNL_ARG_ATTR_POST_OP_DW | DNNL_ARG_BIAS, dw_bias},
                                         {DNNL_ARG_DST, bind(b, result)}});
    release(b, temp);
    return result;
  }

  memory zeros(std::int64_t n) {
    memory m({{n}, k_f32, tag::x}, m_engine);
    std::memset(m.get_data_handle(), 0, static_cast<std::size_t>(n) * sizeof(float));
    return m;
  }

  Value gemm(Builder& b, const Op& op, const Value& x) {
    const GraphNode& n = *op.node;
    if (n.int_attr("transB", 0) != 1 || n.int_attr("transA", 0) != 0 ||
        n.float_attr("alpha", 1.f) != 1.f || n.float_attr("beta", 1.f) != 1.f)
      throw ModelError("the oneDNN runtime runs Gemm as x * W^T + b only");
    int temp;
    Value src = as_plain(b, x, temp);
    dims d = src.md.dims();
    const GraphWeight& w = weight(n.inputs.at(1));
    if (d.size() != 2 || w.dims.size() != 2 || w.dims[1] != d[1])
      throw ModelError("a Gemm's weight does not match its input");
    const std::int64_t out = w.dims[0];
    memory::desc bias_md({out}, k_f32, tag::x);
    dnnl::inner_product_forward::desc desc(dnnl::prop_kind::forward_inference, src.md,
                                           memory::desc({out, d[1]}, k_f32, tag::any), bias_md,
                                           plain_desc({d[0], out}));
    dnnl::inner_product_forward::primitive_desc pd(desc, attr_with(op.act, false), m_engine);
    memory weights = constant(b, n.inputs[1], plain_desc({out, d[1]}), pd.weights_desc());
    memory bias = n.inputs.size() > 2 ? constant(b, n.inputs[2], bias_md, bias_md) : zeros(out);
    Value result = fresh(b, pd.dst_desc());
    add_step<dnnl::inner_product_forward>(b, pd,
                                          {{DNNL_ARG_SRC, bind(b, src)},
                                           {DNNL_ARG_WEIGHTS, weights},
                                           {DNNL_ARG_BIAS, bias},
                                           {DNNL_ARG_DST, bind(b, result)}});
    release(b, temp);
    return result;
  }

  Value pool(Builder& b, const GraphNode& n, const Value& x) {
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
    dnnl::pooling_forward::primitive_desc pd(desc, attr, m_engine);
    Value result = fresh(b, pd.dst_desc());
    add_step<dnnl::pooling_forward>(b, pd,
                                    {{DNNL_ARG_SRC, bind(b, x)}, {DNNL_ARG_DST, bind(b, result)}});
    return result;
  }

  Value eltwise(Builder& b, const Activation& act, const Value& x) {
    dnnl::eltwise_forward::desc desc(dnnl::prop_kind::forward_inference, act.alg, x.md, act.alpha,
                                     act.beta);
    dnnl::primitive_attr attr;
    attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
    dnnl::eltwise_forward::primitive_desc pd(desc, attr, m_engine);
    Value result = fresh(b, pd.dst_desc());
    add_step<dnnl::eltwise_forward>(b, pd,
                                    {{DNNL_ARG_SRC, bind(b, x)}, {DNNL_ARG_DST, bind(b, result)}});
    return result;
  }

  // Add or Mul; either side may be a constant, broadcast along the batch.
  Value binary(Builder& b, const GraphNode& n) {
    auto operand = [&](const std::string& name, const dims& like, memory& mem) {
      if (m_graph.weights.count(name)) {
        dims wd(weight(name).dims.begin(), weight(name).dims.end());
        // Broadcast as ONNX does: the constant's dims align to the right.
        dims full(like.size(), 1);
        for (std::size_t i = 0; i < wd.size() && i < full.size(); ++i)
          full[full.size() - 1 - i] = wd[wd.size() - 1 - i];
        memory::desc md = plain_desc(full);
        mem = constant(b, name, md, md);
        return md;
      }
      Value v = b.values.at(name);
      mem = bind(b, v);
      return v.md;
    };
    const std::string& a_name =
        m_graph.weights.count(n.inputs.at(0)) ? n.inputs.at(1) : n.inputs.at(0);
    const std::string& c_name = a_name == n.inputs[0] ? n.inputs.at(1) : n.inputs[0];
    Value a = b.values.at(a_name);
    int temp = -1;
    memory a_mem = bind(b, a), c_mem;
    memory::desc c_md = operand(c_name, a.md.dims(), c_mem);
    if (!m_graph.weights.count(c_name) && c_md != a.md) {
      Value c = as_layout(b, b.values.at(c_name), a.md, temp);
      c_mem = bind(b, c);
      c_md = c.md;
    }
    dnnl::binary::desc desc(
        n.op == "Add" ? dnnl::algorithm::binary_add : dnnl::algorithm::binary_mul, a.md, c_md,
        a.md);
    dnnl::primitive_attr attr;
    attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
    dnnl::binary::primitive_desc pd(desc, attr, m_engine);
    Value result = fresh(b, a.md);
    add_step<dnnl::binary>(
        b, pd, {{DNNL_ARG_SRC_0, a_mem}, {DNNL_ARG_SRC_1, c_mem}, {DNNL_ARG_DST, bind(b, result)}});
    release(b, temp);
    return result;
  }

  Value concat(Builder& b, const GraphNode& n) {
    std::int64_t axis = n.int_attr("axis", 1);
    std::vector<memory::desc> mds;
    std::unordered_map<int, memory> args;
    std::vector<int> temps;
    for (std::size_t i = 0; i < n.inputs.size(); ++i) {
      int temp;
      Value v = as_plain(b, b.values.at(n.inputs[i]), temp);
      temps.push_back(temp);
      mds.push_back(v.md);
      args[DNNL_ARG_MULTIPLE_SRC + static_cast<int>(i)] = bind(b, v);
    }
    if (axis < 0 || axis >= static_cast<std::int64_t>(mds.at(0).dims().size()))
      throw ModelError("a Concat's axis is out of range");
    dims out = mds[0].dims();
    out[axis] = 0;
    for (const auto& md : mds) out[axis] += md.dims()[axis];
    dnnl::primitive_attr attr;
    attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
    dnnl::concat::primitive_desc pd(plain_desc(out), static_cast<int>(axis), mds, m_engine, attr);
    Value result = fresh(b, pd.dst_desc());
    args[DNNL_ARG_DST] = bind(b, result);
    add_step<dnnl::concat>(b, pd, std::move(args));
    for (int t : temps) release(b, t);
    return result;
  }

  // A permutation of the axes: a reorder from the input read in the output's order.
  Value transpose(Builder& b, const GraphNode& n, const Value& x) {
    int temp;
    Value src = as_plain(b, x, temp);
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
    Value result = fresh(b, plain_desc(out));
    memory from = bind(b, view), into = bind(b, result);
    dnnl::reorder::primitive_desc pd(m_engine, view.md, m_engine, result.md);
    add_step<dnnl::reorder>(b, pd, {{DNNL_ARG_FROM, from}, {DNNL_ARG_TO, into}});
    release(b, temp);
    return result;
  }

  // Flatten from axis 1: the plain bytes, viewed as [N, rest].
  Value flatten(Builder& b, const GraphNode& n, const Value& x) {
    if (n.int_attr("axis", 1) != 1)
      throw ModelError("the oneDNN runtime flattens from axis 1 only");
    int temp;
    Value src = as_plain(b, x, temp);
    dims d = src.md.dims();
    Value result{plain_desc({d[0], product(d) / d[0]}), src.buffer};
    // Shares the input's buffer, or keeps the reordered copy as its own.
    if (temp < 0 && src.buffer >= 0) ++b.refs[src.buffer];
    return result;
  }

  Plan build(std::int64_t n, std::int64_t side) {
    Builder b;
    memory::desc input_md({n, 3, side, side}, k_f32, tag::nchw);
    b.plan.input = memory(input_md, m_engine, DNNL_MEMORY_NONE);
    b.values[m_graph.input] = {input_md, -1};
    for (std::size_t i = 0; i < m_ops.size(); ++i) {
      for (const std::string& in : m_ops[i].inputs) b.last_read[in] = i;
      if (!m_ops[i].sum.empty()) b.last_read[m_ops[i].sum] = i;
    }
    std::vector<char> fused(m_ops.size(), 0);  // run as the depthwise post-op of the Op before
    for (std::size_t i = 0; i < m_ops.size(); ++i) {
      const Op& op = m_ops[i];
      const GraphNode& node = *op.node;
      try {
        std::optional<Value> pair;
        if (op.depthwise >= 0 && !fused[i]) {
          auto x = b.values.find(op.inputs.at(0));
          if (x != b.values.end())
            pair = conv_with_depthwise(b, op, m_ops[static_cast<std::size_t>(op.depthwise)],
                                       x->second);
        }
        if (pair) {
          b.values[m_ops[static_cast<std::size_t>(op.depthwise)].output] = *pair;
          fused[static_cast<std::size_t>(op.depthwise)] = 1;
        } else if (!fused[i]) {
          b.values[op.output] = compute(b, op);
        }
      } catch (const dnnl::error& e) {
        throw ModelError("the oneDNN runtime cannot run node " + std::to_string(i) + " (" +
                         node.op + ") at batch " + std::to_string(n) + ": " + e.what());
      }
      // Values read for the last time give their buffers back.
      auto done = [&](const std::string& name) {
        auto it = b.last_read.find(name);
        if (it == b.last_read.end() || it->second != i || name == m_graph.output) return;
        auto v = b.values.find(name);
        if (v != b.values.end()) release(b, v->second.buffer);
      };
      std::vector<std::string> read = op.inputs;
      if (!op.sum.empty()) read.push_back(op.sum);
      std::sort(read.begin(), read.end());
      read.erase(std::unique(read.begin(), read.end()), read.end());
      for (const std::string& name : read) done(name);
    }
    // The output, plain, in a buffer of its own.
    const Value& last = b.values.at(m_graph.output);
    int temp;
    Value out = as_plain(b, last, temp);
    if (out.md.dims().size() != 2 || out.buffer < 0)
      throw ModelError("the graph's output must be [N, k]");
    b.plan.output_buffer = out.buffer;
    b.plan.width = out.md.dims()[1];
    run_jobs(b.jobs, n);
    for (auto& [name, md, mem] : b.constants) m_constants[name].emplace_back(md, mem);
    return std::move(b.plan);
  }

  // The build's jobs on m_threads threads (the caller's one among them),
  // each running oneDNN single-threaded. The first failure is rethrown once
  // all have ended.
  void run_jobs(const std::vector<std::function<void()>>& jobs, std::int64_t n) {
    const int before = omp_get_max_threads();
    std::mutex failed;
    std::exception_ptr failure;
    parallel_for(0, jobs.size(), m_threads > 0 ? m_threads : before, [&](std::size_t i) {
      omp_set_num_threads(1);
      try {
        jobs[i]();
      } catch (const dnnl::error& e) {
        std::lock_guard<std::mutex> lock(failed);
        if (!failure)
          failure = std::make_exception_ptr(
              ModelError("the oneDNN runtime cannot build its plan at batch " + std::to_string(n) +
                         ": " + e.what()));
      } catch (...) {
        std::lock_guard<std::mutex> lock(failed);
        if (!failure) failure = std::current_exception();
      }
    });
    omp_set_num_threads(before);
    if (failure) std::rethrow_exception(failure);
  }

  Value compute(Builder& b, const Op& op) {
    const GraphNode& n = *op.node;
    auto in = [&](std::size_t k) -> const Value& {
      auto it = b.values.find(op.inputs.at(k));
      if (it == b.values.end())
        throw ModelError(n.op + " reads '" + op.inputs[k] + "', which is not an activation");
      return it->second;
    };
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

  InferenceGraph m_graph;
  std::vector<Op> m_ops;
  int m_threads = 0;
  dnnl::engine m_engine{dnnl::engine::kind::cpu, 0};
  dnnl::stream m_stream{m_engine};
  mutable std::mutex m_mutex;
  std::map<std::pair<std::int64_t, std::int64_t>, Plan> m_plans;
  std::vector<Buffer> m_buffers;
  Buffer m_scratch;
  std::map<std::string, std::vector<std::pair<memory::desc, memory>>> m_constants;
};

GraphExecutor::GraphExecutor(InferenceGraph graph, int threads)
    : m_impl(std::make_unique<Impl>(std::move(graph), threads)) {}
GraphExecutor::~GraphExecutor() = default;

std::vector<float> GraphExecutor::run(const float* input, std::int64_t n, std::int64_t side) {
  return m_impl->run(input, n, side);
}

void GraphExecutor::own_weights() { m_impl->own_weights(); }

std::size_t GraphExecutor::plans() const { return m_impl->plans(); }
std::size_t GraphExecutor::working_bytes() const { return m_impl->working_bytes(); }

}  // namespace cd
