// How the oneDNN runtime (runtime/executor.h) builds a plan: the values of
// one batch size's forward pass, the buffers holding them, and the steps
// that compute them. The executor walks the graph; the operators
// (runtime/operators.h) add each node's steps through a PlanBuilder.
//   - A value's buffer is taken when it is written and given back after its
//     last reader, so values share a few buffers (reference counted).
//   - Weights are reordered once into the layout their primitive wants and
//     kept across plans (ConstantStore).
//   - Primitive creation and weight reorders are jobs that run after the
//     walk, on every thread.
// Internal to cd::runtime.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <limits>
#include <map>
#include <string>
#include <tuple>
#include <type_traits>
#include <unordered_map>
#include <utility>
#include <vector>

#include <dnnl.hpp>

#include "runtime/fusion.h"
#include "runtime/graph.h"

namespace cd::onednn {

using dnnl::memory;
using dims = memory::dims;
using tag = memory::format_tag;
constexpr auto k_f32 = memory::data_type::f32;

// A value while a plan is built: its layout and the buffer holding it.
struct Value {
  memory::desc md;
  int buffer = -1;  // -1: the caller's input
};

struct Step {
  dnnl::primitive prim;
  std::unordered_map<int, memory> args;
  int observed = -1;  // calibrating: the Conv (Op index) whose input DNNL_ARG_SRC is
  // Or catdog's own code instead of a primitive, on the same bound memory.
  std::function<void()> own;
  int group = -1;  // the branch it belongs to (Plan::branches), or -1
};

// The values a Conv's input took over the calibration runs.
struct Range {
  float lo = std::numeric_limits<float>::infinity();
  float hi = -std::numeric_limits<float>::infinity();
  bool seen() const { return lo <= hi; }
};

enum class Precision { k_float, k_calibrating, k_int8 };

struct Plan {
  memory input;
  std::vector<Step> steps;
  std::vector<std::pair<memory, int>> bound;  // memory -> buffer it points into
  std::vector<memory> input_views;            // pointed at the caller's input too
  // Pointed at the scratchpad: each memory at its group's part of it.
  std::vector<std::pair<memory, int>> scratch;
  std::vector<std::size_t> buffer_bytes;
  std::vector<std::size_t> scratch_bytes{0};  // per group + 1: [0] the steps of no branch
  // Branches: groups of steps that read only the input and their own values,
  // run side by side, one thread each, before the steps of no group. 0: the
  // steps run in order.
  int branches = 0;
  int output_buffer = -1;
  std::int64_t width = 0;
};

// Weights in the layouts their primitives want, by weight name: built by
// one plan, reused by the next.
using ConstantStore = std::map<std::string, std::vector<std::pair<memory::desc, memory>>>;

memory::desc plain_desc(const dims& d);
std::int64_t product(const dims& d);

// oneDNN's gemm-based inner product generates its kernel at its first
// execution: one run on zeros takes that into the build.
void dry_run(const dnnl::engine& engine, const dnnl::primitive& prim,
             const dnnl::inner_product_forward::primitive_desc& pd);

class PlanBuilder {
 public:
  PlanBuilder(const InferenceGraph& graph, const dnnl::engine& engine, const ConstantStore& kept)
      : m_graph(graph), m_engine(engine), m_kept(kept) {}

  Plan plan;
  std::map<std::string, Value> values;
  std::map<std::string, std::size_t> last_read;  // value -> index of its last reader op
  // Work that waits for the walk to end and then runs on every thread: each
  // step's primitive (its JIT code) and each weight's reorder. Independent,
  // so a cold start builds its plan on all cores instead of one.
  std::vector<std::function<void()>> jobs;
  // Constants this build reorders: kept (ConstantStore) once its jobs have run.
  std::vector<std::tuple<std::string, memory::desc, memory>> constants;
  // What the Convs run in; k_int8 reads each one's input range (by Op index).
  Precision precision = Precision::k_float;
  const std::vector<Range>* ranges = nullptr;
  const std::vector<Op>* ops = nullptr;                     // the graph after fusion
  std::map<std::string, std::vector<std::size_t>> readers;  // value -> the Ops reading it

  const dnnl::engine& engine() const { return m_engine; }
  const InferenceGraph& graph() const { return m_graph; }
  bool is_weight(const std::string& name) const { return m_graph.weights.count(name) > 0; }
  const GraphWeight& weight(const std::string& name) const;  // ModelError if absent

  // A buffer for `bytes`: a free one (grown if need be), or a new one.
  int take(std::size_t bytes);
  // One holder fewer; the buffer is free again with none left. -1: nothing.
  void release(int buffer);
  // One holder more: a value that shares another's buffer.
  void share(int buffer) { ++m_refs[static_cast<std::size_t>(buffer)]; }
  // A memory object for `v`, pointed at its buffer when the plan runs.
  memory bind(const Value& v);
  // A value in a fresh buffer of its own.
  Value fresh(const memory::desc& md) { return {md, take(md.get_size())}; }
  // `v` in layout `want`: itself, or a reorder into a temporary buffer,
  // which the caller releases after its step.
  Value as_layout(const Value& v, const memory::desc& want, int& temp);
  Value as_plain(const Value& v, int& temp) { return as_layout(v, plain_desc(v.md.dims()), temp); }
  // A constant in the layout `want`, reordered once and kept. With `attr`
  // (quantisation scales), the reorder applies them.
  memory constant(const std::string& name, const memory::desc& plain, const memory::desc& want,
                  const dnnl::primitive_attr& attr = {});
  // `v` (f32) as `want` (8-bit), each value times `scale`, rounded and saturated,
  // into a temporary buffer the caller releases after its step.
  Value quantized(const Value& v, const memory::desc& want, float scale, int& temp);
  memory zeros(std::int64_t n);  // n floats of 0, for an absent bias

  // The branch the steps added next belong to (-1: none). A buffer a branch
  // has held is given to no other branch: they run at the same time.
  int group = -1;

  // Adds a step of catdog's own code, reading and writing `args` (bound
  // memory whose buffers are set before each run).
  void add_own_step(std::unordered_map<int, memory> args, std::function<void()> run) {
    plan.steps.push_back({dnnl::primitive(), std::move(args), -1, std::move(run), group});
  }

  // Adds a step; its scratchpad (if any) shares the plan's one.
  template <class Prim, class Pd>
  Step& add_step(const Pd& pd, std::unordered_map<int, memory> args) {
    memory::desc scratch = pd.scratchpad_desc();
    if (scratch.get_size() > 0) {
      memory m(scratch, m_engine, DNNL_MEMORY_NONE);
      plan.scratch.emplace_back(m, group);
      auto slot = static_cast<std::size_t>(group + 1);
      if (plan.scratch_bytes.size() <= slot) plan.scratch_bytes.resize(slot + 1, 0);
      plan.scratch_bytes[slot] = std::max(plan.scratch_bytes[slot], scratch.get_size());
      args[DNNL_ARG_SCRATCHPAD] = m;
    }
    std::size_t at = plan.steps.size();
    plan.steps.push_back({dnnl::primitive(), std::move(args), -1, {}, group});
    jobs.push_back([engine = m_engine, &steps = plan.steps, at, pd] {
      steps[at].prim = Prim(pd);
      if constexpr (std::is_same_v<Prim, dnnl::inner_product_forward>)
        dry_run(engine, steps[at].prim, pd);
    });
    return plan.steps.back();
  }

 private:
  const InferenceGraph& m_graph;
  dnnl::engine m_engine;
  const ConstantStore& m_kept;
  std::vector<int> m_refs;   // per buffer: values (and temporaries) holding it
  std::vector<char> m_free;  // per buffer: reusable now
  std::vector<int> m_owner;  // per buffer: the group that last took it
};

}  // namespace cd::onednn
