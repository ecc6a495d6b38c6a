#include "nn/onednn_lite.h"

#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>

#include <algorithm>
#include <stdexcept>
#include <utility>

#ifdef CATDOG_HAVE_ONEDNN
#include <array>
#include <cstring>
#include <map>
#include <mutex>
#include <unordered_map>

#include <dnnl.hpp>
#endif

namespace cd::onednn {

#ifndef CATDOG_HAVE_ONEDNN

bool lite_engine_available() { return false; }

class LiteEngine::Impl {};

LiteEngine::LiteEngine(LiteNet) {
  throw std::logic_error("LiteEngine: this build has no oneDNN (see lite_engine_available)");
}
LiteEngine::~LiteEngine() = default;
std::vector<at::Tensor> LiteEngine::run(const at::Tensor&) { return {}; }

#else

bool lite_engine_available() { return true; }

namespace {

using dnnl::memory;
using dims = memory::dims;
using tag = memory::format_tag;
constexpr auto k_f32 = memory::data_type::f32;

// Where an activation lives: the run's buffers, reused block after block.
// A block reads `x` and writes its output back there (the residual add in
// place) or to `y`, which then becomes the next block's `x`.
enum Slot : int { k_x, k_y, k_expanded, k_depthwise, k_reordered, k_slots };

constexpr std::size_t k_max_plans = 32;

struct Act {
  memory::desc md;
  int slot = k_x;
};

struct Step {
  dnnl::primitive prim;
  std::unordered_map<int, memory> args;
};

// Everything one input shape needs; the buffers are the engine's.
struct Plan {
  memory input;
  std::vector<Step> steps;
  std::vector<std::pair<memory, int> > bound;  // pointed at their slot on each run
  std::array<std::size_t, k_slots> bytes{};
  std::vector<std::pair<memory, std::int64_t> > outputs;  // plain [N, C, 1, 1], and C
};

// TensorFlow "SAME": output side ceil(n / s); the padding goes after when uneven.
std::pair<std::int64_t, std::int64_t> same_padding(std::int64_t n, std::int64_t kernel,
                                                   std::int64_t stride) {
  std::int64_t out = (n + stride - 1) / stride;
  std::int64_t total = std::max<std::int64_t>((out - 1) * stride + kernel - n, 0);
  return {total / 2, total - total / 2};
}

}  // namespace

class LiteEngine::Impl {
 public:
  explicit Impl(LiteNet net) : m_net(std::move(net)) {}

  std::vector<at::Tensor> run(const at::Tensor& x) {
    std::unique_lock<std::mutex> lock(m_mutex, std::try_to_lock);
    if (!lock.owns_lock()) return {};
    std::vector<std::int64_t> key(x.sizes().begin(), x.sizes().end());
    key.insert(key.end(), x.strides().begin(), x.strides().end());
    auto found = m_plans.find(key);
    if (found == m_plans.end()) {
      // Shapes vary only by batch size in practice; a stream of odd ones
      // starts the cache over rather than growing it without bound.
      if (m_plans.size() >= k_max_plans) m_plans.clear();
      found = m_plans.emplace(key, build(x)).first;
    }
    Plan& plan = found->second;
    for (int s = 0; s < k_slots; ++s)
      if (m_buffers[s].numel() < static_cast<std::int64_t>(plan.bytes[s]))
        m_buffers[s] = at::empty({static_cast<std::int64_t>(plan.bytes[s])}, at::kByte);
    for (auto& [mem, slot] : plan.bound) mem.set_data_handle(m_buffers[slot].data_ptr());
    plan.input.set_data_handle(x.data_ptr());
    std::vector<at::Tensor> out;
    for (auto& [mem, channels] : plan.outputs) {
      out.push_back(at::empty({x.size(0), channels}, x.options()));
      mem.set_data_handle(out.back().data_ptr());
    }
    for (Step& step : plan.steps) step.prim.execute(m_stream, step.args);
    m_stream.wait();
    return out;
  }

 private:
  memory bind(Plan& plan, const Act& a) {
    memory m(a.md, m_engine, DNNL_MEMORY_NONE);
    plan.bound.emplace_back(m, a.slot);
    plan.bytes[a.slot] = std::max(plan.bytes[a.slot], a.md.get_size());
    return m;
  }

  // The conv's weights in the layout its primitive wants, reordered once.
  memory weights(const LiteConv& c, const memory::desc& want, const dims& plain_dims) {
    auto& known = m_weights[&c];
    for (auto& [md, mem] : known)
      if (md == want) return mem;
    // Read as it is now: to_channels_last may have restrided the module's
    // tensor (the same one) since the engine was built.
    at::Tensor w = c.weight.contiguous();
    memory plain({plain_dims, k_f32, c.groups > 1 ? tag::goihw : tag::oihw}, m_engine,
                 w.data_ptr());
    memory packed(want, m_engine);
    dnnl::reorder(plain, packed).execute(m_stream, plain, packed);
    m_stream.wait();
    known.emplace_back(want, packed);
    return packed;
  }

  // A copy the engine owns: the module's own tensor may later move.
  memory copied(const at::Tensor& bias) {
    memory m({{bias.numel()}, k_f32, tag::x}, m_engine);
    std::memcpy(m.get_data_handle(), bias.data_ptr(), bias.numel() * sizeof(float));
    return m;
  }

  // One conv step from `in` into `out_slot`; with `residual`, its output is
  // added to that activation, in place.
  Act conv(Plan& plan, const LiteConv& c, const Act& in, int out_slot,
           const Act* residual = nullptr) {
    dims d = in.md.dims();
    const std::int64_t n = d[0], ch = d[1], h = d[2], w = d[3];
    const std::int64_t out = c.weight.size(0), k = c.weight.size(2), s = c.stride;
    auto [top, bottom] = same_padding(h, k, s);
    auto [left, right] = same_padding(w, k, s);
    dims wdims =
        c.groups == 1 ? dims{out, ch, k, k} : dims{c.groups, out / c.groups, ch / c.groups, k, k};
    memory::desc dst =
        residual ? residual->md
                 : memory::desc({n, out, (h + s - 1) / s, (w + s - 1) / s}, k_f32, tag::any);
    dnnl::convolution_forward::desc desc(
        dnnl::prop_kind::forward_inference, dnnl::algorithm::convolution_direct,
        memory::desc(d, k_f32, tag::any), memory::desc(wdims, k_f32, tag::any),
        memory::desc({out}, k_f32, tag::x), dst, {s, s}, {top, left}, {bottom, right});
    dnnl::post_ops ops;
    if (c.clip6) ops.append_eltwise(1.f, dnnl::algorithm::eltwise_clip, 0.f, 6.f);
    if (residual) ops.append_sum(1.f);
    dnnl::primitive_attr attr;
    attr.set_post_ops(ops);
    dnnl::convolution_forward::primitive_desc pd(desc, attr, m_engine);
    Act src = reordered(plan, in, pd.src_desc());
    Act result{pd.dst_desc(), residual ? residual->slot : out_slot};
    plan.steps.push_back({dnnl::convolution_forward(pd),
                          {{DNNL_ARG_SRC, bind(plan, src)},
                           {DNNL_ARG_WEIGHTS, weights(c, pd.weights_desc(), wdims)},
                           {DNNL_ARG_BIAS, copied(c.bias)},
                           {DNNL_ARG_DST, bind(plan, result)}}});
    return result;
  }

  // `in` as `want` lays it out: itself, or a reorder into the spare slot.
  Act reordered(Plan& plan, const Act& in, const memory::desc& want) {
    if (want == in.md) return in;
    Act to{want, k_reordered};
    memory from = bind(plan, in), into = bind(plan, to);
    plan.steps.push_back({dnnl::reorder(from, into), {{DNNL_ARG_FROM, from}, {DNNL_ARG_TO, into}}});
    return to;
  }

  // Global average (or maximum) pooling of `in` into a plain [N, C] output.
  void pool(Plan& plan, const Act& in, dnnl::algorithm how) {
    dims d = in.md.dims();
    memory::desc dst({d[0], d[1], 1, 1}, k_f32, tag::nchw);
    dnnl::pooling_forward::desc desc(dnnl::prop_kind::forward_inference, how, in.md, dst, {1, 1},
                                     {d[2], d[3]}, {0, 0}, {0, 0});
    dnnl::pooling_forward::primitive_desc pd(desc, m_engine);
    memory result(dst, m_engine, DNNL_MEMORY_NONE);
    plan.outputs.emplace_back(result, d[1]);
    plan.steps.push_back(
        {dnnl::pooling_forward(pd), {{DNNL_ARG_SRC, bind(plan, in)}, {DNNL_ARG_DST, result}}});
  }

  Plan build(const at::Tensor& x) {
    Plan plan;
    dims sizes(x.sizes().begin(), x.sizes().end()), strides(x.strides().begin(), x.strides().end());
    memory::desc input(sizes, k_f32, strides);
    plan.input = memory(input, m_engine, DNNL_MEMORY_NONE);
    // The image is read where it lies: the stem's reorder (if any) reads plan.input.
    Act h = stem(plan, input);
    std::vector<Act> taps;
    for (std::size_t i = 0; i < m_net.blocks.size(); ++i) {
      const LiteBlock& b = m_net.blocks[i];
      Act mid = b.has_expand ? conv(plan, b.expand, h, k_expanded) : h;
      mid = conv(plan, b.depthwise, mid, k_depthwise);
      if (b.residual) {
        h = conv(plan, b.project, mid, h.slot, &h);
      } else {
        h = conv(plan, b.project, mid, h.slot == k_x ? k_y : k_x);
      }
      for (std::size_t t : m_net.taps)
        if (t == i) pool(plan, h, dnnl::algorithm::pooling_avg_exclude_padding);
    }
    Act head = conv(plan, m_net.head, h, k_expanded);
    pool(plan, head, dnnl::algorithm::pooling_avg_exclude_padding);
    if (m_net.peak) pool(plan, head, dnnl::algorithm::pooling_max);
    return plan;
  }

  // The stem reads the caller's tensor: a reorder from it, or the conv itself.
  Act stem(Plan& plan, const memory::desc& input) {
    // Built as any conv, then its source (or the reorder feeding it) rebound
    // to plan.input instead of a slot.
    std::size_t first_bound = plan.bound.size(), first_step = plan.steps.size();
    Act out = conv(plan, m_net.stem, Act{input, k_reordered}, k_x);
    Step& s = plan.steps[first_step];
    int arg = s.args.count(DNNL_ARG_FROM) ? DNNL_ARG_FROM : DNNL_ARG_SRC;
    memory slot_mem = s.args.at(arg);
    s.args[arg] = plan.input;
    for (std::size_t i = first_bound; i < plan.bound.size(); ++i)
      if (plan.bound[i].first.get() == slot_mem.get()) {
        plan.bound.erase(plan.bound.begin() + static_cast<std::ptrdiff_t>(i));
        break;
      }
    return out;
  }

  LiteNet m_net;
  dnnl::engine m_engine{dnnl::engine::kind::cpu, 0};
  dnnl::stream m_stream{m_engine};
  std::mutex m_mutex;
  std::map<std::vector<std::int64_t>, Plan> m_plans;
  std::array<at::Tensor, k_slots> m_buffers;
  std::map<const LiteConv*, std::vector<std::pair<memory::desc, memory> > > m_weights;
};

LiteEngine::LiteEngine(LiteNet net) : m_impl(std::make_unique<Impl>(std::move(net))) {}
LiteEngine::~LiteEngine() = default;
std::vector<at::Tensor> LiteEngine::run(const at::Tensor& x) { return m_impl->run(x); }

#endif

}  // namespace cd::onednn
