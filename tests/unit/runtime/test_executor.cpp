#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <functional>
#include <random>

#include "graph_node.h"
#include "runtime/executor.h"
#include "runtime/graph.h"
#include "util/errors.h"

// catdog's oneDNN runtime against plain loops, on small graphs that use
// every operator and every fusion it does.

namespace {

struct T {
  std::vector<std::int64_t> d;  // N, C, H, W (or N, K)
  std::vector<float> v;
  float& at(std::int64_t n, std::int64_t c, std::int64_t h, std::int64_t w) {
    return v[((n * d[1] + c) * d[2] + h) * d[3] + w];
  }
  float get(std::int64_t n, std::int64_t c, std::int64_t h, std::int64_t w) const {
    return v[((n * d[1] + c) * d[2] + h) * d[3] + w];
  }
};

std::vector<float> random_values(std::size_t n, unsigned seed, float scale = 1.f) {
  std::mt19937 gen(seed);
  std::uniform_real_distribution<float> u(-scale, scale);
  std::vector<float> v(n);
  for (float& x : v) x = u(gen);
  return v;
}

// Convolution with explicit pads {top, left, bottom, right}.
T conv(const T& x, const cd::GraphWeight& w, const cd::GraphWeight& b, int stride,
       std::vector<std::int64_t> pads, int groups) {
  std::int64_t out = w.dims[0], k = w.dims[2], per = x.d[1] / groups;
  std::int64_t ho = (x.d[2] + pads[0] + pads[2] - k) / stride + 1;
  std::int64_t wo = (x.d[3] + pads[1] + pads[3] - k) / stride + 1;
  T y{{x.d[0], out, ho, wo}, std::vector<float>(x.d[0] * out * ho * wo)};
  for (std::int64_t n = 0; n < x.d[0]; ++n)
    for (std::int64_t o = 0; o < out; ++o)
      for (std::int64_t i = 0; i < ho; ++i)
        for (std::int64_t j = 0; j < wo; ++j) {
          double s = b.values[o];
          std::int64_t g = o / (out / groups);
          for (std::int64_t c = 0; c < per; ++c)
            for (std::int64_t u = 0; u < k; ++u)
              for (std::int64_t v = 0; v < k; ++v) {
                std::int64_t h = i * stride + u - pads[0], q = j * stride + v - pads[1];
                if (h < 0 || q < 0 || h >= x.d[2] || q >= x.d[3]) continue;
                s += x.get(n, g * per + c, h, q) * w.values[((o * per + c) * k + u) * k + v];
              }
          y.at(n, o, i, j) = static_cast<float>(s);
        }
  return y;
}

template <class F>
T map(T x, F f) {
  for (float& v : x.v) v = f(v);
  return x;
}

// Mean (or max) over the positions: [N, C].
T pooled(const T& x, bool max) {
  T y{{x.d[0], x.d[1]}, {}};
  for (std::int64_t n = 0; n < x.d[0]; ++n)
    for (std::int64_t c = 0; c < x.d[1]; ++c) {
      double s = 0, m = -1e30;
      for (std::int64_t h = 0; h < x.d[2]; ++h)
        for (std::int64_t w = 0; w < x.d[3]; ++w) {
          s += x.get(n, c, h, w);
          m = std::max<double>(m, x.get(n, c, h, w));
        }
      y.v.push_back(static_cast<float>(max ? m : s / static_cast<double>(x.d[2] * x.d[3])));
    }
  return y;
}

cd::GraphWeight weight(std::vector<std::int64_t> dims, unsigned seed, float scale = 0.5f) {
  std::size_t n = 1;
  for (auto d : dims) n *= static_cast<std::size_t>(d);
  return {dims, random_values(n, seed, scale)};
}

using cd::test::node;

cd::GraphNode conv_node(std::string in, std::string w, std::string b, std::string out, int k,
                        int stride, std::vector<std::int64_t> pads, int group) {
  return node("Conv", {std::move(in), std::move(w), std::move(b)}, std::move(out),
              {{"kernel_shape", {k, k}},
               {"strides", {stride, stride}},
               {"pads", std::move(pads)},
               {"dilations", {1, 1}},
               {"group", {group}}});
}

// An MBConv-like graph: a padded stride-2 stem, ReLU6, a depthwise conv, a
// 1x1 projection added to its input, then both pools, Concat, Gemm, Sigmoid.
cd::InferenceGraph block_graph() {
  cd::InferenceGraph g;
  g.weights["w0"] = weight({8, 3, 3, 3}, 1);
  g.weights["b0"] = weight({8}, 2);
  g.weights["w1"] = weight({8, 1, 3, 3}, 3);
  g.weights["b1"] = weight({8}, 4);
  g.weights["w2"] = weight({8, 8, 1, 1}, 5);
  g.weights["b2"] = weight({8}, 6);
  g.weights["wf"] = weight({1, 16}, 7);
  g.weights["bf"] = weight({1}, 8);
  g.nodes = {
      node("Pad", {"input"}, "p", {{"pads", {0, 0, 0, 0, 0, 0, 1, 1}}}, {{"value", 0.f}}),
      conv_node("p", "w0", "b0", "c0", 3, 2, {0, 0, 0, 0}, 1),
      node("Clip", {"c0"}, "a0", {}, {{"min", 0.f}, {"max", 6.f}}),
      conv_node("a0", "w1", "b1", "c1", 3, 1, {1, 1, 1, 1}, 8),
      node("Relu", {"c1"}, "a1"),
      conv_node("a1", "w2", "b2", "c2", 1, 1, {0, 0, 0, 0}, 1),
      node("Add", {"c2", "a0"}, "r"),
      node("GlobalAveragePool", {"r"}, "gap"),
      node("Flatten", {"gap"}, "f1", {{"axis", {1}}}),
      node("GlobalMaxPool", {"r"}, "gmp"),
      node("Flatten", {"gmp"}, "f2", {{"axis", {1}}}),
      node("Concat", {"f1", "f2"}, "cat", {{"axis", {1}}}),
      node("Gemm", {"cat", "wf", "bf"}, "logit", {{"transB", {1}}},
           {{"alpha", 1.f}, {"beta", 1.f}}),
      node("Sigmoid", {"logit"}, "p_dog"),
  };
  g.output = "p_dog";
  return g;
}

std::vector<float> block_reference(const cd::InferenceGraph& g, const T& x) {
  const auto& w = g.weights;
  T a0 = map(conv(x, w.at("w0"), w.at("b0"), 2, {0, 0, 1, 1}, 1),
             [](float v) { return std::min(6.f, std::max(0.f, v)); });
  T a1 = map(conv(a0, w.at("w1"), w.at("b1"), 1, {1, 1, 1, 1}, 8),
             [](float v) { return std::max(0.f, v); });
  T r = conv(a1, w.at("w2"), w.at("b2"), 1, {0, 0, 0, 0}, 1);
  for (std::size_t i = 0; i < r.v.size(); ++i) r.v[i] += a0.v[i];
  T avg = pooled(r, false), mx = pooled(r, true);
  std::vector<float> p;
  for (std::int64_t n = 0; n < x.d[0]; ++n) {
    double s = w.at("bf").values[0];
    for (int c = 0; c < 8; ++c)
      s += avg.v[n * 8 + c] * w.at("wf").values[c] + mx.v[n * 8 + c] * w.at("wf").values[8 + c];
    p.push_back(static_cast<float>(1.0 / (1.0 + std::exp(-s))));
  }
  return p;
}

// An inverted-residual block's expansion: 1x1 Conv to 24 channels, ReLU6, a
// zero Pad (bottom and right), a depthwise 3x3 Conv of stride 2 (or, with
// groups 1, a dense one), ReLU6, then the mean per channel and a Gemm to one
// logit.
cd::InferenceGraph expand_graph(std::int64_t groups = 24) {
  cd::InferenceGraph g;
  g.weights["we"] = weight({24, 3, 1, 1}, 21);
  g.weights["be"] = weight({24}, 22);
  g.weights["wd"] = weight({24, 24 / groups, 3, 3}, 23);
  g.weights["bd"] = weight({24}, 24);
  g.weights["wf"] = weight({1, 24}, 25);
  g.nodes = {
      conv_node("input", "we", "be", "e", 1, 1, {0, 0, 0, 0}, 1),
      node("Clip", {"e"}, "ea", {}, {{"min", 0.f}, {"max", 6.f}}),
      node("Pad", {"ea"}, "p", {{"pads", {0, 0, 0, 0, 0, 0, 1, 1}}}, {{"value", 0.f}}),
      conv_node("p", "wd", "bd", "d", 3, 2, {0, 0, 0, 0}, groups),
      node("Clip", {"d"}, "da", {}, {{"min", 0.f}, {"max", 6.f}}),
      node("GlobalAveragePool", {"da"}, "gap"),
      node("Flatten", {"gap"}, "f", {{"axis", {1}}}),
      node("Gemm", {"f", "wf"}, "logit", {{"transB", {1}}}, {{"alpha", 1.f}, {"beta", 1.f}}),
  };
  g.output = "logit";
  return g;
}

std::vector<float> expand_reference(const cd::InferenceGraph& g, const T& x) {
  const auto& w = g.weights;
  auto relu6 = [](float v) { return std::min(6.f, std::max(0.f, v)); };
  T e = map(conv(x, w.at("we"), w.at("be"), 1, {0, 0, 0, 0}, 1), relu6);
  T d = map(conv(e, w.at("wd"), w.at("bd"), 2, {0, 0, 1, 1}, 24 / w.at("wd").dims[1]), relu6);
  T avg = pooled(d, false);
  std::vector<float> p;
  for (std::int64_t n = 0; n < x.d[0]; ++n) {
    double s = 0;
    for (int c = 0; c < 24; ++c) s += avg.v[n * 24 + c] * w.at("wf").values[c];
    p.push_back(static_cast<float>(s));
  }
  return p;
}

}  // namespace

TEST_CASE("the oneDNN runtime runs a 1x1 and a depthwise Conv as one where it pays, as loops do",
          "[runtime]") {
  cd::InferenceGraph g = expand_graph();
  // 24 x 150 x 150 floats between the two (2.2 MB an image): one primitive,
  // and no buffer holds them. At 12 x 12 the two run apart, and at 149 too:
  // the Pad leaves 74 rows, the post-op would compute ceil(149 / 2) = 75.
  for (std::int64_t side : {150, 12, 149}) {
    INFO("side " << side);
    cd::GraphExecutor exec(g, 1);
    const std::int64_t n = 2;
    T x{{n, 3, side, side}, random_values(static_cast<std::size_t>(n * 3 * side * side), 26, 2.f)};
    std::vector<float> want = expand_reference(g, x);
    std::vector<float> got = exec.run(x.v.data(), n, side);
    REQUIRE(got.size() == want.size());
    for (std::size_t i = 0; i < want.size(); ++i) CHECK(got[i] == Approx(want[i]).margin(1e-4));
    const std::size_t expanded = 24 * static_cast<std::size_t>(n * side * side) * sizeof(float);
    if (side == 150)
      CHECK(exec.working_bytes() < expanded);
    else
      CHECK(exec.working_bytes() >= expanded);
  }
}

TEST_CASE("the oneDNN runtime runs a fused block graph as plain loops do, at any batch size",
          "[runtime]") {
  cd::InferenceGraph g = block_graph();
  cd::GraphExecutor exec(g, 1);
  for (std::int64_t n : {1, 3, 1}) {
    T x{{n, 3, 11, 11}, random_values(static_cast<std::size_t>(n) * 3 * 11 * 11, 9, 2.f)};
    std::vector<float> want = block_reference(g, x);
    std::vector<float> got = exec.run(x.v.data(), n, 11);
    REQUIRE(got.size() == want.size());
    auto [lo, hi] = std::minmax_element(want.begin(), want.end());
    if (n == 3) CHECK(*hi - *lo > 0.01f);  // the images differ, and so do their answers
    for (std::size_t i = 0; i < want.size(); ++i) CHECK(got[i] == Approx(want[i]).margin(1e-5));
  }
  CHECK(exec.plans() == 2);  // batch 1 planned once, reused
  CHECK(exec.working_bytes() > 0);
}

TEST_CASE("the oneDNN runtime pools, transposes, scales and activates as ONNX says", "[runtime]") {
  // [1, 2, 5, 5] -> LeakyReLU -> MaxPool 2x2/2 with ceil_mode (3x3) -> Transpose
  // (0, 1, 3, 2) -> Flatten -> Mul by 0.5.
  cd::InferenceGraph g;
  g.weights["half"] = {{1}, {0.5f}};
  g.nodes = {
      node("LeakyRelu", {"input"}, "l", {}, {{"alpha", 0.1f}}),
      node("MaxPool", {"l"}, "m",
           {{"kernel_shape", {2, 2}},
            {"strides", {2, 2}},
            {"pads", {0, 0, 0, 0}},
            {"ceil_mode", {1}}}),
      node("Transpose", {"m"}, "t", {{"perm", {0, 1, 3, 2}}}),
      node("Flatten", {"t"}, "f", {{"axis", {1}}}),
      node("Mul", {"f", "half"}, "out"),
  };
  g.output = "out";
  // The runtime's input is [N, 3, S, S]: three channels, the third ignored by nothing.
  T x{{1, 3, 5, 5}, random_values(75, 11, 3.f)};
  std::vector<float> got = cd::GraphExecutor(g, 1).run(x.v.data(), 1, 5);
  REQUIRE(got.size() == 27);
  for (int c = 0; c < 3; ++c)
    for (int i = 0; i < 3; ++i)
      for (int j = 0; j < 3; ++j) {
        float m = -1e30f;
        for (int u = 0; u < 2; ++u)
          for (int v = 0; v < 2; ++v) {
            int h = 2 * i + u, w = 2 * j + v;
            if (h >= 5 || w >= 5) continue;  // ceil_mode's last window runs past the edge
            float a = x.get(0, c, h, w);
            m = std::max(m, a > 0 ? a : 0.1f * a);
          }
        // Transposed: position (j, i) of the flattened output.
        INFO("channel " << c << " window " << i << "," << j);
        CHECK(got[c * 9 + j * 3 + i] == Approx(0.5f * m).margin(1e-6));
      }
}

namespace {

// A matrix [rows, cols, 1, 1] with one entry in five nonzero, as an
// antialiased resize's rows are mostly zeros.
cd::GraphWeight axis_matrix(std::int64_t rows, std::int64_t cols, unsigned seed) {
  cd::GraphWeight w = weight({rows, cols, 1, 1}, seed);
  for (std::size_t i = 0; i < w.values.size(); ++i)
    if (i % 5 != 0) w.values[i] = 0.f;
  return w;
}

// out[n, c, i, j] = sum over k, l of h[i, k] x[n, c, k, l] w[j, l] (h: none = identity).
std::vector<float> along_axes(const T& x, const cd::GraphWeight& w, const cd::GraphWeight* h) {
  const std::int64_t rows = h ? h->dims[0] : x.d[2], cols = w.dims[0];
  std::vector<float> out;
  for (std::int64_t n = 0; n < x.d[0]; ++n)
    for (std::int64_t c = 0; c < x.d[1]; ++c)
      for (std::int64_t i = 0; i < rows; ++i)
        for (std::int64_t j = 0; j < cols; ++j) {
          double s = 0;
          for (std::int64_t k = 0; k < x.d[2]; ++k) {
            double hk = h ? h->values[static_cast<std::size_t>(i * x.d[2] + k)] : (i == k);
            if (hk == 0) continue;
            for (std::int64_t l = 0; l < x.d[3]; ++l)
              s += hk * x.get(n, c, k, l) * w.values[static_cast<std::size_t>(j * x.d[3] + l)];
          }
          out.push_back(static_cast<float>(s));
        }
  return out;
}

cd::GraphNode matrix_conv(std::string in, std::string w, std::string out) {
  return node(
      "Conv", {std::move(in), std::move(w)}, std::move(out),
      {{"kernel_shape", {1, 1}}, {"strides", {1, 1}}, {"pads", {0, 0, 0, 0}}, {"group", {1}}});
}

}  // namespace

TEST_CASE(
    "the oneDNN runtime resizes and mirrors along the axes as the graph's Transposes and "
    "Convs say",
    "[runtime]") {
  const std::int64_t n = 2, side = 9, out = 7, narrow = 5;
  T x{{n, 3, side, side}, random_values(static_cast<std::size_t>(n * 3 * side * side), 41)};
  SECTION("a resize: the width, then the height") {
    cd::InferenceGraph g;
    g.weights["aw"] = axis_matrix(narrow, side, 42);  // 9 wide to 5, 9 high to 7
    g.weights["ah"] = axis_matrix(out, side, 43);
    g.nodes = {node("Transpose", {"input"}, "t1", {{"perm", {0, 3, 2, 1}}}),
               matrix_conv("t1", "aw", "c1"),
               node("Transpose", {"c1"}, "t2", {{"perm", {0, 2, 1, 3}}}),
               matrix_conv("t2", "ah", "c2"),
               node("Transpose", {"c2"}, "t3", {{"perm", {0, 3, 1, 2}}}),
               node("Flatten", {"t3"}, "f", {{"axis", {1}}})};
    g.output = "f";
    std::vector<float> want = along_axes(x, g.weights["aw"], &g.weights["ah"]);
    cd::GraphExecutor exec(g, 2);
    std::vector<float> got = exec.run(x.v.data(), n, side);
    REQUIRE(got.size() == want.size());
    for (std::size_t i = 0; i < want.size(); ++i) CHECK(got[i] == Approx(want[i]).margin(1e-5));
  }
  SECTION("a mirror: the width alone") {
    cd::InferenceGraph g;
    g.weights["flip"] = {{side, side, 1, 1}, std::vector<float>(side * side, 0.f)};
    for (std::int64_t i = 0; i < side; ++i)
      g.weights["flip"].values[static_cast<std::size_t>(i * side + side - 1 - i)] = 1.f;
    g.nodes = {node("Transpose", {"input"}, "t1", {{"perm", {0, 3, 2, 1}}}),
               matrix_conv("t1", "flip", "c1"),
               node("Transpose", {"c1"}, "t2", {{"perm", {0, 3, 2, 1}}}),
               node("Flatten", {"t2"}, "f", {{"axis", {1}}})};
    g.output = "f";
    cd::GraphExecutor exec(g, 1);
    std::vector<float> got = exec.run(x.v.data(), n, side);
    REQUIRE(got.size() == x.v.size());
    for (std::int64_t b = 0; b < n; ++b)
      for (std::int64_t c = 0; c < 3; ++c)
        for (std::int64_t i = 0; i < side; ++i)
          for (std::int64_t j = 0; j < side; ++j)
            CHECK(got[static_cast<std::size_t>(((b * 3 + c) * side + i) * side + j)] ==
                  x.get(b, c, i, side - 1 - j));
  }
  SECTION("a matrix that does not fit the width is named") {
    cd::InferenceGraph g;
    g.weights["aw"] = axis_matrix(out, side + 1, 44);
    g.nodes = {node("Transpose", {"input"}, "t1", {{"perm", {0, 3, 2, 1}}}),
               matrix_conv("t1", "aw", "c1"),
               node("Transpose", {"c1"}, "t2", {{"perm", {0, 3, 2, 1}}}),
               node("Flatten", {"t2"}, "f", {{"axis", {1}}})};
    g.output = "f";
    cd::GraphExecutor exec(g, 1);
    CHECK_THROWS_WITH(exec.run(x.v.data(), n, side), Catch::Contains("'aw'"));
  }
}

extern "C" int omp_get_max_threads();  // oneDNN's OpenMP, which the executor sets

namespace {

// Two branches on the input, each Conv 3x3 -> ReLU -> Conv 1x1 -> ReLU ->
// mean per channel, then one Gemm over both: the shape of the accurate
// setting's two backbones, small.
cd::InferenceGraph two_branch_graph() {
  cd::InferenceGraph g;
  for (const char* b : {"a", "b"}) {
    std::string p = b;
    g.weights["w1" + p] = weight({8, 3, 3, 3}, p == "a" ? 51 : 61);
    g.weights["b1" + p] = weight({8}, p == "a" ? 52 : 62);
    g.weights["w2" + p] = weight({8, 8, 1, 1}, p == "a" ? 53 : 63);
    g.weights["b2" + p] = weight({8}, p == "a" ? 54 : 64);
    for (const cd::GraphNode& n :
         {conv_node("input", "w1" + p, "b1" + p, "c1" + p, 3, 1, {1, 1, 1, 1}, 1),
          node("Relu", {"c1" + p}, "r1" + p),
          conv_node("r1" + p, "w2" + p, "b2" + p, "c2" + p, 1, 1, {0, 0, 0, 0}, 1),
          node("Relu", {"c2" + p}, "r2" + p), node("GlobalAveragePool", {"r2" + p}, "g" + p),
          node("Flatten", {"g" + p}, "f" + p, {{"axis", {1}}})})
      g.nodes.push_back(n);
  }
  g.weights["wf"] = weight({1, 16}, 55);
  g.nodes.push_back(node("Concat", {"fa", "fb"}, "both", {{"axis", {1}}}));
  g.nodes.push_back(
      node("Gemm", {"both", "wf"}, "logit", {{"transB", {1}}}, {{"alpha", 1.f}, {"beta", 1.f}}));
  g.output = "logit";
  return g;
}

std::vector<float> two_branch_reference(const cd::InferenceGraph& g, const T& x) {
  const auto& w = g.weights;
  auto relu = [](float v) { return std::max(0.f, v); };
  std::vector<T> pooled_parts;
  for (const char* b : {"a", "b"}) {
    std::string p = b;
    T r1 = map(conv(x, w.at("w1" + p), w.at("b1" + p), 1, {1, 1, 1, 1}, 1), relu);
    T r2 = map(conv(r1, w.at("w2" + p), w.at("b2" + p), 1, {0, 0, 0, 0}, 1), relu);
    pooled_parts.push_back(pooled(r2, false));
  }
  std::vector<float> out;
  for (std::int64_t n = 0; n < x.d[0]; ++n) {
    double s = 0;
    for (int k = 0; k < 16; ++k)
      s +=
          pooled_parts[static_cast<std::size_t>(k / 8)].v[static_cast<std::size_t>(n * 8 + k % 8)] *
          w.at("wf").values[static_cast<std::size_t>(k)];
    out.push_back(static_cast<float>(s));
  }
  return out;
}

// got equals want, value for value, within 1e-4.
void check_close(const std::vector<float>& got, const std::vector<float>& want) {
  REQUIRE(got.size() == want.size());
  for (std::size_t i = 0; i < want.size(); ++i) CHECK(got[i] == Approx(want[i]).margin(1e-4));
}

}  // namespace

TEST_CASE("the oneDNN runtime runs branches side by side at small batches, as loops do",
          "[runtime]") {
  cd::InferenceGraph g = two_branch_graph();
  const std::int64_t side = 13;
  for (std::int64_t n : {1, 2, 8}) {
    INFO("batch " << n);
    T x{{n, 3, side, side}, random_values(static_cast<std::size_t>(n * 3 * side * side), 56)};
    std::vector<float> want = two_branch_reference(g, x);
    cd::GraphExecutor two(g, 2), one(g, 1);
    for (int again = 0; again < 3; ++again)  // the buffers as the last run left them
      check_close(two.run(x.v.data(), n, side), want);
    CHECK(two.branches(n, side) == (n <= 2 ? 2 : 0));
    check_close(one.run(x.v.data(), n, side), want);
    CHECK(one.branches(n, side) == 0);  // one thread: nothing to run beside
  }
  // One executor through batch 1 (side by side), 8 (in order) and 1 again:
  // the same answers, and after each run OpenMP's thread count is the
  // executor's 2 (a run sets it), not the one its branches and tail ran on.
  {
    cd::GraphExecutor exec(g, 2);
    for (std::int64_t n : {1, 8, 1}) {
      T x{{n, 3, side, side}, random_values(static_cast<std::size_t>(n * 3 * side * side), 57)};
      check_close(exec.run(x.v.data(), n, side), two_branch_reference(g, x));
      CHECK(omp_get_max_threads() == 2);
    }
  }
  // One branch (every graph of one backbone) is not split.
  cd::InferenceGraph single = expand_graph();
  cd::GraphExecutor exec(single, 2);
  std::vector<float> x(3 * 12 * 12, 0.25f);
  exec.run(x.data(), 1, 12);
  CHECK(exec.branches(1, 12) == 0);
}

TEST_CASE("the oneDNN runtime names what it cannot run", "[runtime]") {
  cd::InferenceGraph g;
  g.nodes = {node("Softmax", {"input"}, "out")};
  g.output = "out";
  CHECK_THROWS_WITH(cd::GraphExecutor(g, 1), Catch::Contains("operator Softmax"));

  cd::InferenceGraph mismatch = block_graph();
  mismatch.weights["wf"] = weight({1, 15}, 7);  // the Concat gives 16 features
  cd::GraphExecutor exec(mismatch, 1);
  std::vector<float> x(3 * 11 * 11, 0.5f);
  CHECK_THROWS_AS(exec.run(x.data(), 1, 11), cd::ModelError);
  CHECK_THROWS_WITH(exec.run(x.data(), 1, 11), Catch::Contains("Gemm"));

  cd::InferenceGraph pad = block_graph();
  pad.nodes[0].floats["value"] = 1.f;  // not a zero padding: no conv can take it
  CHECK_THROWS_WITH(cd::GraphExecutor(pad, 1), Catch::Contains("Pad"));
}

TEST_CASE("weights read in place from a file are its own once the runtime owns them", "[runtime]") {
  cd::InferenceGraph g = block_graph();
  auto file = std::make_shared<std::string>(cd::write_graph(g));
  cd::InferenceGraph mapped = cd::read_graph(*file, "m.cdm", file);
  REQUIRE(mapped.weights.at("w2").borrowed != nullptr);
  cd::GraphExecutor exec(std::move(mapped), 1);
  T one{{1, 3, 11, 11}, random_values(3 * 11 * 11, 4, 2.f)};
  std::vector<float> before = exec.run(one.v.data(), 1, 11);
  exec.own_weights();
  // The file's bytes change in place (an operator's cp over a served model):
  // a batch size planned afterwards still runs the weights it was given.
  std::fill(file->begin() + static_cast<std::ptrdiff_t>(file->size() / 2), file->end(), '\x7f');
  T two{{2, 3, 11, 11}, one.v};
  two.v.insert(two.v.end(), one.v.begin(), one.v.end());
  std::vector<float> after = exec.run(two.v.data(), 2, 11);
  REQUIRE(after.size() == 2);
  CHECK(after[0] == Approx(before[0]).margin(1e-5));
  CHECK(after[1] == Approx(before[0]).margin(1e-5));
  CHECK(exec.plans() == 2);
  CHECK(file.use_count() == 1);  // the executor let the bytes go
}

TEST_CASE("8-bit convolutions at the top of their ranges do not overflow 16-bit pair sums",
          "[runtime][int8]") {
  // Every input at its calibrated maximum (u8 255) and every weight at its
  // channel's largest: without VNNI, a kernel that summed u8 x s8 pairs in
  // 16 bits would saturate at 2 x 255 x 127 (depthwise, weights to 127) and
  // just fit at 2 x 255 x 63 (dense, weights to 63). (With VNNI the sums
  // are 32-bit and this passes either way.)
  for (const std::int64_t groups : {std::int64_t{3}, std::int64_t{1}}) {
    INFO((groups == 1 ? "dense" : "depthwise") << " 3x3 Conv");
    const std::int64_t out = groups == 1 ? 8 : 3;
    cd::InferenceGraph g;
    g.weights["w"] = {{out, 3 / groups, 3, 3},
                      std::vector<float>(static_cast<std::size_t>(out * 27 / groups), 0.5f)};
    g.weights["b"] = {{out}, std::vector<float>(static_cast<std::size_t>(out), 0.f)};
    g.nodes = {conv_node("input", "w", "b", "y", 3, 1, {0, 0, 0, 0}, static_cast<int>(groups)),
               node("GlobalAveragePool", {"y"}, "gap"),  // of equal values: each of them
               node("Flatten", {"gap"}, "f", {{"axis", {1}}})};
    g.output = "f";
    const std::int64_t n = 2, side = 5;
    const std::vector<float> x(static_cast<std::size_t>(n * 3 * side * side), 3.f);
    cd::GraphExecutor exec(g, 1);
    exec.calibrate();
    exec.run(x.data(), n, side);
    exec.quantize();
    const std::vector<float> got = exec.run(x.data(), n, side);
    REQUIRE(got.size() == static_cast<std::size_t>(n * out));
    const float want = static_cast<float>(27 / groups) * 3.f * 0.5f;  // 3 and 0.5 quantise exactly
    for (float v : got) CHECK(v == Approx(want).epsilon(1e-4));
    // Off the quantisation grid (2.9 is 246.5 steps of 3/255) the answer
    // moves from f32's: the Conv did run on 8 bits.
    const std::vector<float> off(x.size(), 2.9f);
    const float exact = static_cast<float>(27 / groups) * 2.9f * 0.5f;
    for (float v : exec.run(off.data(), n, side)) CHECK(v != Approx(exact).epsilon(1e-5));
  }
}

TEST_CASE("after calibration the oneDNN runtime's 8-bit convolutions stay close to f32",
          "[runtime]") {
  // expand_graph: an s8 input (the image has negative values) into a 1x1
  // Conv, which writes u8 for the depthwise Conv after it (its ReLU6 scaled
  // to match); with groups 1, for a dense 3x3 Conv (weights to 63).
  // block_graph: a padded stride-2 stem on s8 read by two (so it writes
  // f32), a depthwise Conv writing u8 for a 1x1 Conv with a residual Add
  // (the sum post-op after an 8-bit convolution).
  struct Case {
    cd::InferenceGraph g;
    std::int64_t side;
    std::function<std::vector<float>(const cd::InferenceGraph&, const T&)> reference;
    double tolerance;  // of the answers' spread
  };
  std::vector<Case> cases;
  cases.push_back({expand_graph(), 24, expand_reference, 0.03});
  // Its dense weights go to 63 on u8 input (half the depthwise one's steps).
  cases.push_back({expand_graph(1), 24, expand_reference, 0.05});
  cases.push_back({block_graph(), 11, block_reference, 0.03});
  for (auto& [g, side, reference, tolerance] : cases) {
    const std::int64_t n = 8;
    T x{{n, 3, side, side}, random_values(static_cast<std::size_t>(n * 3 * side * side), 31, 2.f)};
    std::vector<float> want = reference(g, x);
    cd::GraphExecutor exec(g, 1);
    CHECK_THROWS_WITH(exec.quantize(), Catch::Contains("calibration"));
    exec.calibrate();
    std::vector<float> calibrated = exec.run(x.v.data(), n, side);
    exec.quantize();
    std::vector<float> got = exec.run(x.v.data(), n, side);
    REQUIRE(got.size() == want.size());
    auto [lo, hi] = std::minmax_element(want.begin(), want.end());
    const double spread = *hi - *lo;
    REQUIRE(spread > 0.01);
    double worst = 0, changed = 0;
    for (std::size_t i = 0; i < want.size(); ++i) {
      CHECK(calibrated[i] == Approx(want[i]).margin(1e-4));  // calibration runs in f32
      worst = std::max(worst, std::abs(double(got[i]) - want[i]));
      changed = std::max(changed, std::abs(double(got[i]) - calibrated[i]));
    }
    INFO("worst difference " << worst << " of a spread of " << spread);
    CHECK(worst < tolerance * spread);
    CHECK(changed > 1e-6);  // the answers are the 8-bit convolutions', not f32's
    // A batch size planned after quantize() runs 8-bit too.
    std::vector<float> one = exec.run(x.v.data(), 1, side);
    CHECK(one[0] == Approx(got[0]).margin(1e-4));
    CHECK(std::abs(one[0] - calibrated[0]) > 1e-6);
    // The calibration travels with the graph's bytes: read back, it runs
    // INT8 from its first run, with the same answers.
    CHECK_FALSE(cd::GraphExecutor(g, 1).int8());
    cd::GraphExecutor carried(cd::read_graph(cd::write_graph(exec.calibrated_graph()), "q.cdm"), 1);
    CHECK(carried.int8());
    std::vector<float> again = carried.run(x.v.data(), n, side);
    for (std::size_t i = 0; i < want.size(); ++i) CHECK(again[i] == Approx(got[i]).margin(1e-6));
    if (g.weights.count("we")) {
      // The 1x1 Conv writes its 24 channels as the Conv after it reads them,
      // one byte each: no buffer holds them as floats.
      const std::size_t expanded = 24 * static_cast<std::size_t>(n * side * side) * sizeof(float);
      CHECK(carried.working_bytes() < expanded);
    }
  }
  cd::GraphExecutor fresh(block_graph(), 1);
  CHECK_THROWS_WITH(fresh.calibrated_graph(), Catch::Contains("calibration"));
  cd::InferenceGraph broken = block_graph();
  broken.nodes[1].floats[cd::k_int8_input_lo] = 2.f;  // lo above hi
  broken.nodes[1].floats[cd::k_int8_input_hi] = 1.f;
  CHECK_THROWS_WITH(cd::GraphExecutor(broken, 1), Catch::Contains("not a finite [lo, hi]"));
  broken.nodes[1].floats.erase(cd::k_int8_input_hi);  // half a pair
  CHECK_THROWS_WITH(cd::GraphExecutor(broken, 1), Catch::Contains("calibrate the f32 model"));
}
