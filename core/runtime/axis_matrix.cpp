#include "runtime/axis_matrix.h"

#include <algorithm>
#include <optional>
#include <string>
#include <vector>

#include "util/errors.h"

namespace cd::onednn {

namespace {

// One axis's matrix, its zeros left out: row i's (column, weight) pairs
// start at first[i]. A resize's antialiased bilinear rows have 2-4 nonzeros
// of hundreds, a mirror's one.
struct SparseRows {
  std::vector<std::size_t> first;
  std::vector<std::int64_t> column;
  std::vector<float> weight;
};

SparseRows sparse_rows(const GraphWeight& w) {
  SparseRows m;
  const std::int64_t rows = w.dims[0], cols = w.dims[1];
  for (std::int64_t i = 0; i < rows; ++i) {
    m.first.push_back(m.column.size());
    for (std::int64_t k = 0; k < cols; ++k) {
      float v = w.data()[i * cols + k];
      if (v == 0.f) continue;
      m.column.push_back(k);
      m.weight.push_back(v);
    }
  }
  m.first.push_back(m.column.size());
  return m;
}

// out [planes, rows, m rows] = in [planes, rows, cols] times m's transpose: each row's
// outputs gathered from its inputs.
void along_width(const float* in, float* out, std::int64_t planes, std::int64_t cols,
                 const SparseRows& m) {
  const std::size_t width = m.first.size() - 1;
  for (std::int64_t r = 0; r < planes; ++r) {
    const float* x = in + r * cols;
    float* y = out + r * static_cast<std::int64_t>(width);
    for (std::size_t j = 0; j < width; ++j) {
      float sum = 0.f;
      for (std::size_t t = m.first[j]; t < m.first[j + 1]; ++t) sum += m.weight[t] * x[m.column[t]];
      y[j] = sum;
    }
  }
}

// out [planes, m rows, width] = m times each plane [rows, width]: whole rows added.
void along_height(const float* in, float* out, std::int64_t planes, std::int64_t rows,
                  std::int64_t width, const SparseRows& m) {
  const std::size_t height = m.first.size() - 1;
  for (std::int64_t p = 0; p < planes; ++p) {
    const float* x = in + p * rows * width;
    float* y = out + p * static_cast<std::int64_t>(height) * width;
    for (std::size_t i = 0; i < height; ++i) {
      float* yi = y + static_cast<std::int64_t>(i) * width;
      std::fill(yi, yi + width, 0.f);
      for (std::size_t t = m.first[i]; t < m.first[i + 1]; ++t) {
        const float* xk = x + m.column[t] * width;
        const float a = m.weight[t];
        for (std::int64_t j = 0; j < width; ++j) yi[j] += a * xk[j];
      }
    }
  }
}

}  // namespace

// The matrices along the width (and then the height) of a plain NCHW value,
// as catdog's own loops over their nonzeros: the dense 1x1 Convs between
// Transposes that the graph writes cost the second backbone of the accurate
// setting about 2.5 ms of its batch-1 pass (two 300 x 280 kernels and the
// reorders around them), the loops a small part of that.
Value axis_matrices(PlanBuilder& b, const Op& op, const Value& x) {
  int temp;
  Value src = b.as_plain(x, temp);
  const dims d = src.md.dims();
  if (d.size() != 4)
    throw ModelError("a Transpose-Conv-Transpose resize or mirror needs a 4-d input");
  const AxisMatrix& first = op.axis_matrices.front();
  const GraphWeight& ww = b.weight(first.weight);
  if (first.axis != 3 || ww.dims.size() != 4 || ww.dims[1] != d[3] ||
      ww.count() != static_cast<std::size_t>(ww.dims[0] * ww.dims[1]))
    throw ModelError("a mirror or resize's width matrix '" + first.weight +
                     "' does not match its input's width " + std::to_string(d[3]));
  SparseRows width = sparse_rows(ww);
  const std::int64_t wide = ww.dims[0];
  std::optional<SparseRows> height;
  std::int64_t tall = d[2];
  if (op.axis_matrices.size() > 1) {
    const AxisMatrix& second = op.axis_matrices[1];
    const GraphWeight& wh = b.weight(second.weight);
    if (second.axis != 2 || wh.dims.size() != 4 || wh.dims[1] != d[2] ||
        wh.count() != static_cast<std::size_t>(wh.dims[0] * wh.dims[1]))
      throw ModelError("a resize's height matrix '" + second.weight +
                       "' does not match its input's height " + std::to_string(d[2]));
    height = sparse_rows(wh);
    tall = wh.dims[0];
  }
  Value between = height ? b.fresh(plain_desc({d[0], d[1], d[2], wide})) : Value{};
  Value result = b.fresh(plain_desc({d[0], d[1], tall, wide}));
  memory from = b.bind(src), into = b.bind(result);
  memory mid = height ? b.bind(between) : memory();
  const std::int64_t planes = d[0] * d[1], rows = d[2], cols = d[3];
  b.add_own_step({{DNNL_ARG_SRC, from}, {DNNL_ARG_DST, into}},
                 [from, into, mid, width = std::move(width), height = std::move(height), planes,
                  rows, cols, wide]() {
                   const auto* in = static_cast<const float*>(from.get_data_handle());
                   auto* out = static_cast<float*>(into.get_data_handle());
                   if (!height) return along_width(in, out, planes * rows, cols, width);
                   auto* w = static_cast<float*>(mid.get_data_handle());
                   along_width(in, w, planes * rows, cols, width);
                   along_height(w, out, planes, rows, wide, *height);
                 });
  if (height) b.release(between.buffer);
  b.release(temp);
  return result;
}

}  // namespace cd::onednn
