#include "runtime/executor.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <exception>
#include <functional>
#include <map>
#include <mutex>
#include <numeric>
#include <optional>
#include <utility>

#include <spdlog/spdlog.h>
#include <dnnl.hpp>

#include "runtime/fusion.h"
#include "runtime/operators.h"
#include "runtime/plan.h"
#include "util/errors.h"
#include "util/parallel.h"

// oneDNN's CPU runtime is OpenMP (Debian's libdnnl2 links libgomp); the
// thread count is a per-thread setting of the caller's.
extern "C" void omp_set_num_threads(int);
extern "C" int omp_get_max_threads();

namespace cd {

using onednn::memory;
using onednn::Plan;
using onednn::PlanBuilder;
using onednn::Step;
using onednn::Value;

namespace {
constexpr std::size_t k_max_plans = 16;
// Branches run side by side up to this batch size. One thread each pays no
// OpenMP hand-over between primitives, which costs most where a primitive's
// work is small; at larger batches the threads share each primitive better
// than they share unequal branches.
constexpr std::int64_t k_branch_batch = 2;

// Sets OpenMP's thread count back when it goes out of scope.
struct RestoreThreads {
  int threads;
  ~RestoreThreads() { omp_set_num_threads(threads); }
};
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
    // A graph that carries its calibration runs INT8 from its first run.
    m_ranges.assign(m_ops.size(), {});
    for (std::size_t i = 0; i < m_ops.size(); ++i) {
      const GraphNode& n = *m_ops[i].node;
      auto lo = n.floats.find(k_int8_input_lo), hi = n.floats.find(k_int8_input_hi);
      if (n.op != "Conv" || (lo == n.floats.end() && hi == n.floats.end())) continue;
      if (lo == n.floats.end() || hi == n.floats.end() || !(lo->second <= hi->second) ||
          !std::isfinite(lo->second) || !std::isfinite(hi->second))
        throw ModelError("the INT8 calibration of Conv '" + n.output +
                         "' is not a finite [lo, hi] pair; calibrate the f32 model file again "
                         "(cd-eval --int8-calibration ... --int8-model ...)");
      m_ranges[i] = {lo->second, hi->second};
      m_precision = onednn::Precision::k_int8;
      m_int8 = true;
    }
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
    std::vector<std::size_t> scratch_at;  // each group's part of the scratchpad
    std::size_t scratch_total = 0;
    for (std::size_t bytes : plan.scratch_bytes) {
      scratch_at.push_back(scratch_total);
      scratch_total += (bytes + 63) / 64 * 64;
    }
    m_scratch.reserve(scratch_total);
    for (auto& [mem, b] : plan.bound) mem.set_data_handle(m_buffers[b].data());
    for (auto& [mem, group] : plan.scratch)
      mem.set_data_handle(static_cast<char*>(m_scratch.data()) +
                          scratch_at[static_cast<std::size_t>(group + 1)]);
    plan.input.set_data_handle(const_cast<float*>(input));
    for (auto& mem : plan.input_views) mem.set_data_handle(const_cast<float*>(input));
    if (plan.branches > 0) {
      const int team = threads();
      RestoreThreads restore{team};
      run_branches(plan, team);
      omp_set_num_threads(1);  // the rest as it was planned (build)
      for (Step& step : plan.steps)
        if (step.group < 0) execute(step, m_stream);
    } else {
      for (Step& step : plan.steps) execute(step, m_stream);
    }
    m_stream.wait();
    if (first) {  // --log-level debug: where a cold start's time goes
      using ms = std::chrono::duration<double, std::milli>;
      spdlog::debug(
          "runtime: plan for batch {} at {} built in {:.1f} ms ({} steps, weights "
          "reordered, {} branches side by side); its first forward {:.1f} ms; buffers {:.1f} MB, "
          "scratchpad {:.1f} MB, reordered weights {:.1f} MB",
          n, side, ms(t1 - t0).count(), plan.steps.size(), plan.branches,
          ms(std::chrono::steady_clock::now() - t1).count(), megabytes(plan.buffer_bytes),
          scratch_total / 1e6, m_reordered_bytes / 1e6);
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

  void calibrate() {
    std::lock_guard<std::mutex> lock(m_mutex);
    m_precision = onednn::Precision::k_calibrating;
    m_int8 = false;
    m_ranges.assign(m_ops.size(), {});
    m_plans.clear();
  }

  void quantize() {
    std::lock_guard<std::mutex> lock(m_mutex);
    if (std::none_of(m_ranges.begin(), m_ranges.end(),
                     [](const onednn::Range& r) { return r.seen(); }))
      throw UsageError(
          "INT8 needs calibration first: call calibrate() and run training images through the "
          "model");
    m_precision = onednn::Precision::k_int8;
    m_int8 = true;
    m_plans.clear();
  }

  InferenceGraph calibrated_graph() const {
    std::lock_guard<std::mutex> lock(m_mutex);
    InferenceGraph g = m_graph;
    for (GraphNode& n : g.nodes) {  // what a calibrated graph carried before: this calibration's
      n.floats.erase(k_int8_input_lo);
      n.floats.erase(k_int8_input_hi);
    }
    bool any = false;
    for (std::size_t i = 0; i < m_ops.size(); ++i) {
      if (!m_ranges[i].seen() || m_ops[i].node->op != "Conv") continue;
      GraphNode& n = g.nodes[static_cast<std::size_t>(m_ops[i].node - m_graph.nodes.data())];
      n.floats[k_int8_input_lo] = m_ranges[i].lo;
      n.floats[k_int8_input_hi] = m_ranges[i].hi;
      any = true;
    }
    if (!any)
      throw UsageError(
          "INT8 needs calibration first: call calibrate() and run training images through the "
          "model; no convolution's input was seen");
    return g;
  }

  // Without the lock: /model asks it while a forward pass runs.
  bool int8() const { return m_int8; }

  std::size_t plans() const {
    std::lock_guard<std::mutex> lock(m_mutex);
    return m_plans.size();
  }

  int branches(std::int64_t n, std::int64_t side) const {
    std::lock_guard<std::mutex> lock(m_mutex);
    auto it = m_plans.find({n, side});
    return it == m_plans.end() ? 0 : it->second.branches;
  }

  std::size_t working_bytes() const {
    std::lock_guard<std::mutex> lock(m_mutex);
    std::size_t total = m_scratch.size();
    for (const Buffer& b : m_buffers) total += b.size();
    return total;
  }

 private:
  static double megabytes(const std::vector<std::size_t>& sizes) {
    return static_cast<double>(std::accumulate(sizes.begin(), sizes.end(), std::size_t{0})) / 1e6;
  }

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

  Plan build(std::int64_t n, std::int64_t side) {
    PlanBuilder b(m_graph, m_engine, m_constants);
    b.precision = m_precision;
    b.ranges = &m_ranges;
    b.ops = &m_ops;
    memory::desc input_md({n, 3, side, side}, onednn::k_f32, onednn::tag::nchw);
    b.plan.input = memory(input_md, m_engine, DNNL_MEMORY_NONE);
    b.values[m_graph.input] = {input_md, -1};
    for (std::size_t i = 0; i < m_ops.size(); ++i) {
      for (const std::string& in : m_ops[i].inputs) {
        b.last_read[in] = i;
        b.readers[in].push_back(i);
      }
      if (!m_ops[i].sum.empty()) {
        b.last_read[m_ops[i].sum] = i;
        b.readers[m_ops[i].sum].push_back(i);
      }
    }
    std::vector<char> fused(m_ops.size(), 0);  // run as the depthwise post-op of the Op before
    std::vector<int> group(m_ops.size(), -1);
    const int team = threads();
    RestoreThreads restore{omp_get_max_threads()};  // also when a node cannot be run
    if (n <= k_branch_batch && team > 1 && m_precision != onednn::Precision::k_calibrating)
      group = cd::branches(m_ops, team);
    for (std::size_t i = 0; i < m_ops.size(); ++i) {
      const Op& op = m_ops[i];
      const GraphNode& node = *op.node;
      b.group = group[i];
      b.plan.branches = std::max(b.plan.branches, group[i] + 1);
      // oneDNN sizes a primitive's work split for the threads there are when
      // it is made: a branch's for the one thread that runs it. What follows
      // the branches (a Concat and the head) is small and runs on one thread
      // too: a team of OpenMP threads would leave one spinning for a while
      // after it, on a core the next pass's branches need.
      if (b.plan.branches > 0) omp_set_num_threads(1);
      try {
        std::optional<Value> pair;
        if (op.depthwise >= 0 && m_precision == onednn::Precision::k_float) {
          auto x = b.values.find(op.inputs.at(0));
          if (x != b.values.end())
            pair = onednn::conv_with_depthwise(b, op, m_ops[static_cast<std::size_t>(op.depthwise)],
                                               x->second);
        }
        if (pair) {
          b.values[m_ops[static_cast<std::size_t>(op.depthwise)].output] = *pair;
          fused[static_cast<std::size_t>(op.depthwise)] = 1;
        } else if (!fused[i]) {
          b.values[op.output] = onednn::compute(b, op);
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
        if (v != b.values.end()) b.release(v->second.buffer);
      };
      std::vector<std::string> read = op.inputs;
      if (!op.sum.empty()) read.push_back(op.sum);
      std::sort(read.begin(), read.end());
      read.erase(std::unique(read.begin(), read.end()), read.end());
      for (const std::string& name : read) done(name);
    }
    // The output, plain, in a buffer of its own.
    b.group = -1;
    const Value& last = b.values.at(m_graph.output);
    int temp;
    Value out = b.as_plain(last, temp);
    if (out.md.dims().size() != 2 || out.buffer < 0)
      throw ModelError("the graph's output must be [N, k]");
    b.plan.output_buffer = out.buffer;
    b.plan.width = out.md.dims()[1];
    run_jobs(b.jobs, n, team);
    for (auto& [name, md, mem] : b.constants) {
      m_constants[name].emplace_back(md, mem);
      m_reordered_bytes += md.get_size();
    }
    return std::move(b.plan);
  }

  void execute(Step& step, dnnl::stream& stream) {
    if (step.observed >= 0) observe(step);
    if (step.own) {
      stream.wait();
      step.own();
    } else {
      step.prim.execute(stream, step.args);
    }
  }

  // The branches side by side, each on one thread with oneDNN single-threaded
  // in it; the first failure is rethrown once all have ended.
  void run_branches(Plan& plan, int team) {
    one_thread_each(static_cast<std::size_t>(plan.branches), team, [&](std::size_t g) {
      dnnl::stream stream(m_engine);
      for (Step& step : plan.steps)
        if (step.group == static_cast<int>(g)) execute(step, stream);
      stream.wait();
    });
  }

  int threads() const { return m_threads > 0 ? m_threads : omp_get_max_threads(); }

  // Calibration: the range of the values a Conv is about to read (its
  // input in oneDNN's layout; the zeros padding a blocked layout change nothing).
  void observe(const Step& step) {
    m_stream.wait();
    const memory& src = step.args.at(DNNL_ARG_SRC);
    const auto* v = static_cast<const float*>(src.get_data_handle());
    const std::size_t count = src.get_desc().get_size() / sizeof(float);
    onednn::Range& r = m_ranges.at(static_cast<std::size_t>(step.observed));
    for (std::size_t i = 0; i < count; ++i) {
      r.lo = std::min(r.lo, v[i]);
      r.hi = std::max(r.hi, v[i]);
    }
  }

  // The build's jobs on `team` threads, each running oneDNN single-threaded.
  void run_jobs(const std::vector<std::function<void()>>& jobs, std::int64_t n, int team) {
    try {
      one_thread_each(jobs.size(), team, [&](std::size_t i) { jobs[i](); });
    } catch (const dnnl::error& e) {
      throw ModelError("the oneDNN runtime cannot build its plan at batch " + std::to_string(n) +
                       ": " + e.what());
    }
  }

  // body(i) for each i below count on up to `threads` threads (the caller's
  // one among them), oneDNN single-threaded in each. The first failure is
  // rethrown once all have ended.
  static void one_thread_each(std::size_t count, int threads,
                              const std::function<void(std::size_t)>& body) {
    RestoreThreads restore{omp_get_max_threads()};
    std::mutex failed;
    std::exception_ptr failure;
    parallel_for(0, count, threads, [&](std::size_t i) {
      omp_set_num_threads(1);
      try {
        body(i);
      } catch (...) {
        std::lock_guard<std::mutex> lock(failed);
        if (!failure) failure = std::current_exception();
      }
    });
    if (failure) std::rethrow_exception(failure);
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
  onednn::ConstantStore m_constants;
  std::size_t m_reordered_bytes = 0;  // of m_constants
  onednn::Precision m_precision = onednn::Precision::k_float;
  std::atomic<bool> m_int8{false};      // m_precision == k_int8, for int8()
  std::vector<onednn::Range> m_ranges;  // per Op: its input's, while calibrating
};

GraphExecutor::GraphExecutor(InferenceGraph graph, int threads)
    : m_impl(std::make_unique<Impl>(std::move(graph), threads)) {}
GraphExecutor::~GraphExecutor() = default;

std::vector<float> GraphExecutor::run(const float* input, std::int64_t n, std::int64_t side) {
  return m_impl->run(input, n, side);
}

void GraphExecutor::own_weights() { m_impl->own_weights(); }
void GraphExecutor::calibrate() { m_impl->calibrate(); }
void GraphExecutor::quantize() { m_impl->quantize(); }
InferenceGraph GraphExecutor::calibrated_graph() const { return m_impl->calibrated_graph(); }
bool GraphExecutor::int8() const { return m_impl->int8(); }

std::size_t GraphExecutor::plans() const { return m_impl->plans(); }
std::size_t GraphExecutor::working_bytes() const { return m_impl->working_bytes(); }
int GraphExecutor::branches(std::int64_t n, std::int64_t side) const {
  return m_impl->branches(n, side);
}

}  // namespace cd
