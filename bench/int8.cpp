// bench_int8: what oneDNN's int8 convolutions would buy on this CPU, before
// anyone builds a quantised runtime. Reads the convolutions a real forward pass
// ran (oneDNN's verbose "exec" lines, from `ONEDNN_VERBOSE=1 cd-predict ...`)
// on stdin and times each shape twice, as the f32 primitive the runtime runs
// and as an int8 one (u8 activations, s8 weights, s8 output with per-channel
// scales and the same clip post-op), on the same threads. Prints JSON: per
// shape and in total, the median milliseconds of each.
//   ONEDNN_VERBOSE=1 cd-predict --batch-size 32 ... | bench_int8 [REPEATS]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <regex>
#include <string>
#include <vector>

#include <dnnl.hpp>

namespace {

using dnnl::memory;
using tag = memory::format_tag;
using dt = memory::data_type;

struct Shape {
  std::string text;
  memory::dim groups = 1, mb, ic, oc, ih, oh, kh, sh, ph, iw, ow, kw, sw, pw;
  bool clip = false;  // a ReLU6 post-op
};

bool parse(const std::string& line, Shape& s) {
  if (line.find(",exec,cpu,convolution,") == std::string::npos) return false;
  static const std::regex problem(
      R"((g(\d+))?mb(\d+)_ic(\d+)oc(\d+)_ih(\d+)oh(\d+)kh(\d+)sh(\d+)dh0ph(\d+)_iw(\d+)ow(\d+)kw(\d+)sw(\d+)dw0pw(\d+))");
  std::smatch m;
  if (!std::regex_search(line, m, problem)) return false;
  auto n = [&](int i) { return static_cast<memory::dim>(std::stoll(m[i].str())); };
  s.text = m[0].str();
  s.groups = m[2].matched ? n(2) : 1;
  s.mb = n(3), s.ic = n(4), s.oc = n(5), s.ih = n(6), s.oh = n(7), s.kh = n(8), s.sh = n(9);
  s.ph = n(10), s.iw = n(11), s.ow = n(12), s.kw = n(13), s.sw = n(14), s.pw = n(15);
  s.clip = line.find("eltwise_clip") != std::string::npos;
  return true;
}

double median_ms(dnnl::primitive& prim, dnnl::stream& stream,
                 const std::unordered_map<int, memory>& args, int repeats) {
  prim.execute(stream, args);
  stream.wait();
  std::vector<double> ms;
  for (int r = 0; r < repeats; ++r) {
    auto t0 = std::chrono::steady_clock::now();
    prim.execute(stream, args);
    stream.wait();
    ms.push_back(
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
  }
  std::sort(ms.begin(), ms.end());
  return ms[ms.size() / 2];
}

// One convolution of `s` with the given types; its median time.
double time_conv(const Shape& s, dt src_t, dt wei_t, dt dst_t, dnnl::engine& engine,
                 dnnl::stream& stream, int repeats, std::string& impl) {
  memory::dims src{s.mb, s.ic, s.ih, s.iw}, dst{s.mb, s.oc, s.oh, s.ow};
  memory::dims wei = s.groups > 1
                         ? memory::dims{s.groups, s.oc / s.groups, s.ic / s.groups, s.kh, s.kw}
                         : memory::dims{s.oc, s.ic, s.kh, s.kw};
  memory::dim pr = (s.oh - 1) * s.sh + s.kh - s.ih - s.ph;
  memory::dim pb = (s.ow - 1) * s.sw + s.kw - s.iw - s.pw;
  dnnl::convolution_forward::desc desc(
      dnnl::prop_kind::forward_inference, dnnl::algorithm::convolution_direct,
      memory::desc(src, src_t, tag::any), memory::desc(wei, wei_t, tag::any),
      memory::desc({s.oc}, dt::f32, tag::x), memory::desc(dst, dst_t, tag::any), {s.sh, s.sw},
      {s.ph, s.pw}, {std::max<memory::dim>(pr, 0), std::max<memory::dim>(pb, 0)});
  dnnl::primitive_attr attr;
  if (src_t != dt::f32) attr.set_output_scales(2, std::vector<float>(s.oc, 0.01f));  // per oc
  if (s.clip) {
    dnnl::post_ops ops;
    ops.append_eltwise(1.f, dnnl::algorithm::eltwise_clip, 0.f, src_t == dt::f32 ? 6.f : 127.f);
    attr.set_post_ops(ops);
  }
  dnnl::convolution_forward::primitive_desc pd(desc, attr, engine);
  impl = pd.impl_info_str();
  auto filled = [&](const memory::desc& md) {
    memory m(md, engine);
    auto* p = static_cast<unsigned char*>(m.get_data_handle());
    for (std::size_t i = 0; i < md.get_size(); ++i) p[i] = static_cast<unsigned char>(i * 7 % 61);
    if (md.data_type() == dt::f32)
      for (std::size_t i = 0; i < md.get_size() / 4; ++i)
        reinterpret_cast<float*>(p)[i] = static_cast<float>(i % 13) * 0.01f;
    return m;
  };
  std::unordered_map<int, memory> args{{DNNL_ARG_SRC, filled(pd.src_desc())},
                                       {DNNL_ARG_WEIGHTS, filled(pd.weights_desc())},
                                       {DNNL_ARG_BIAS, filled(pd.bias_desc())},
                                       {DNNL_ARG_DST, filled(pd.dst_desc())}};
  dnnl::convolution_forward prim(pd);
  return median_ms(prim, stream, args, repeats);
}

}  // namespace

int main(int argc, char** argv) {
  const int repeats = argc > 1 ? std::max(3, std::atoi(argv[1])) : 21;
  std::vector<Shape> shapes;
  for (std::string line; std::getline(std::cin, line);) {
    Shape s;
    if (parse(line, s)) shapes.push_back(s);
  }
  if (shapes.empty()) {
    std::fprintf(stderr,
                 "bench_int8: no convolutions on stdin; pipe in ONEDNN_VERBOSE=1 output of a "
                 "forward pass (cd-predict ...)\n");
    return 2;
  }
  dnnl::engine engine(dnnl::engine::kind::cpu, 0);
  dnnl::stream stream(engine);
  double f32_total = 0, int8_total = 0;
  std::printf("{\"convolutions\": %zu, \"shapes\": [\n", shapes.size());
  for (std::size_t i = 0; i < shapes.size(); ++i) {
    const Shape& s = shapes[i];
    std::string f32_impl, int8_impl;
    double f = time_conv(s, dt::f32, dt::f32, dt::f32, engine, stream, repeats, f32_impl);
    double q = time_conv(s, dt::u8, dt::s8, dt::s8, engine, stream, repeats, int8_impl);
    f32_total += f;
    int8_total += q;
    std::printf(
        "  {\"shape\": \"%s\", \"clip\": %s, \"f32_ms\": %.4f, \"f32_impl\": \"%s\", "
        "\"int8_ms\": %.4f, \"int8_impl\": \"%s\"}%s\n",
        s.text.c_str(), s.clip ? "true" : "false", f, f32_impl.c_str(), q, int8_impl.c_str(),
        i + 1 < shapes.size() ? "," : "");
  }
  std::printf("], \"f32_ms\": %.3f, \"int8_ms\": %.3f, \"speedup\": %.3f}\n", f32_total, int8_total,
              f32_total / int8_total);
  return 0;
}
