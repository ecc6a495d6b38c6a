#include "runtime/plan.h"

#include <algorithm>
#include <cstring>
#include <numeric>

#include "util/errors.h"

namespace cd::onednn {

memory::desc plain_desc(const dims& d) {
  static const tag by_rank[] = {tag::undef, tag::a, tag::ab, tag::abc, tag::abcd, tag::abcde};
  return memory::desc(d, k_f32, by_rank[std::min<std::size_t>(d.size(), 5)]);
}

std::int64_t product(const dims& d) {
  return std::accumulate(d.begin(), d.end(), std::int64_t{1}, std::multiplies<>());
}

// 2 ms of a cold start's first forward pass for a 1840-wide head, taken into
// the build, on a free core.
void dry_run(const dnnl::engine& engine, const dnnl::primitive& prim,
             const dnnl::inner_product_forward::primitive_desc& pd) {
  auto zeroed = [&](const memory::desc& md) {
    memory m(md, engine);
    if (md.get_size() > 0) std::memset(m.get_data_handle(), 0, md.get_size());
    return m;
  };
  std::unordered_map<int, memory> args{{DNNL_ARG_SRC, zeroed(pd.src_desc())},
                                       {DNNL_ARG_WEIGHTS, zeroed(pd.weights_desc())},
                                       {DNNL_ARG_BIAS, zeroed(pd.bias_desc())},
                                       {DNNL_ARG_DST, zeroed(pd.dst_desc())}};
  if (pd.scratchpad_desc().get_size() > 0) args[DNNL_ARG_SCRATCHPAD] = zeroed(pd.scratchpad_desc());
  dnnl::stream stream(engine);
  prim.execute(stream, args);
  stream.wait();
}

const GraphWeight& PlanBuilder::weight(const std::string& name) const {
  auto it = m_graph.weights.find(name);
  if (it == m_graph.weights.end()) throw ModelError("the graph has no weight '" + name + "'");
  return it->second;
}

int PlanBuilder::take(std::size_t bytes) {
  std::vector<std::size_t>& sizes = plan.buffer_bytes;
  int best = -1;
  for (std::size_t i = 0; i < m_free.size(); ++i) {
    if (!m_free[i] || (group >= 0 && m_owner[i] != group)) continue;
    if (best < 0 || (sizes[i] >= bytes && (sizes[best] < bytes || sizes[i] < sizes[best])))
      best = static_cast<int>(i);
  }
  if (best < 0) {
    best = static_cast<int>(m_free.size());
    m_free.push_back(0);
    m_refs.push_back(0);
    m_owner.push_back(group);
    sizes.push_back(0);
  }
  m_free[best] = 0;
  m_refs[best] = 1;
  m_owner[best] = group;
  sizes[best] = std::max(sizes[best], bytes);
  return best;
}

void PlanBuilder::release(int buffer) {
  if (buffer < 0) return;
  if (--m_refs[buffer] == 0) m_free[buffer] = 1;
}

memory PlanBuilder::bind(const Value& v) {
  if (v.buffer < 0 && v.md == plan.input.get_desc()) return plan.input;
  memory m(v.md, m_engine, DNNL_MEMORY_NONE);
  if (v.buffer < 0) {  // the caller's input, read another way (a Transpose's view)
    plan.input_views.push_back(m);
    return m;
  }
  plan.bound.emplace_back(m, v.buffer);
  return m;
}

Value PlanBuilder::as_layout(const Value& v, const memory::desc& want, int& temp) {
  temp = -1;
  if (want == v.md) return v;
  Value to = fresh(want);
  temp = to.buffer;
  memory from = bind(v), into = bind(to);
  dnnl::reorder::primitive_desc pd(m_engine, v.md, m_engine, want);
  add_step<dnnl::reorder>(pd, {{DNNL_ARG_FROM, from}, {DNNL_ARG_TO, into}});
  return to;
}

Value PlanBuilder::quantized(const Value& v, const memory::desc& want, float scale, int& temp) {
  Value to = fresh(want);
  temp = to.buffer;
  memory from = bind(v), into = bind(to);
  dnnl::primitive_attr attr;
  attr.set_output_scales(0, {scale});
  dnnl::reorder::primitive_desc pd(m_engine, v.md, m_engine, want, attr);
  add_step<dnnl::reorder>(pd, {{DNNL_ARG_FROM, from}, {DNNL_ARG_TO, into}});
  return to;
}

memory PlanBuilder::constant(const std::string& name, const memory::desc& plain,
                             const memory::desc& want, const dnnl::primitive_attr& attr) {
  auto known = m_kept.find(name);
  if (known != m_kept.end())
    for (auto& [md, mem] : known->second)
      if (md == want) return mem;
  for (auto& [pending, md, mem] : constants)
    if (pending == name && md == want) return mem;
  const GraphWeight& w = weight(name);
  if (static_cast<std::size_t>(product(plain.dims())) != w.count())
    throw ModelError("weight '" + name + "' has " + std::to_string(w.count()) +
                     " values, not the shape its operator needs");
  memory src(plain, m_engine, const_cast<float*>(w.data()));
  memory dst(want, m_engine);
  jobs.push_back([engine = m_engine, src, dst, attr, copy = want == plain]() mutable {
    if (copy) {
      std::memcpy(dst.get_data_handle(), src.get_data_handle(), dst.get_desc().get_size());
      return;
    }
    dnnl::stream stream(engine);
    dnnl::reorder(dnnl::reorder::primitive_desc(src, dst, attr)).execute(stream, src, dst);
    stream.wait();
  });
  constants.emplace_back(name, want, dst);
  return dst;
}

memory PlanBuilder::zeros(std::int64_t n) {
  memory m({{n}, k_f32, tag::x}, m_engine);
  std::memset(m.get_data_handle(), 0, static_cast<std::size_t>(n) * sizeof(float));
  return m;
}

}  // namespace cd::onednn
