// Broadcast plans, axis sums and expansion (see broadcast.h), plus total_sum (row_kernels.h).
#include "autograd/ops/broadcast.h"

#include <algorithm>

namespace mxqat::autograd::detail {

float total_sum(const float* x, int64_t n) {
  const int64_t chunks = (n + kChunk - 1) / kChunk;
  if (chunks <= 1) return row_sum(x, n);
  std::vector<float> part(static_cast<size_t>(chunks));
#pragma omp parallel for schedule(static) if (n > kParallelMin)
  for (int64_t c = 0; c < chunks; ++c)
    part[static_cast<size_t>(c)] = row_sum(x + c * kChunk, std::min(kChunk, n - c * kChunk));
  return row_sum(part.data(), chunks);
}

Shape broadcast_shape(const char* op, const Shape& a, const Shape& b) {
  const size_t nd = std::max(a.size(), b.size());
  Shape out(nd);
  for (size_t i = 0; i < nd; ++i) {
    const int64_t da = i < nd - a.size() ? 1 : a[i - (nd - a.size())];
    const int64_t db = i < nd - b.size() ? 1 : b[i - (nd - b.size())];
    MXQAT_CHECK(da == db || da == 1 || db == 1, op, ": shapes ", shape_str(a), " and ",
                shape_str(b), " do not broadcast (dimension ", i, ": ", da, " vs ", db, ")");
    out[i] = da == 1 ? db : da;
  }
  return out;
}

BroadcastPlan plan_broadcast(const Shape& out, const Shape& a, const Shape& b) {
  // Merged dims, outermost first: size and whether a / b is stretched along it.
  struct Dim { int64_t size; bool ba, bb; };
  std::vector<Dim> dims;
  const size_t nd = out.size();
  for (size_t i = 0; i < nd; ++i) {
    if (out[i] == 1) continue;
    const bool ba = i < nd - a.size() || a[i - (nd - a.size())] == 1;
    const bool bb = i < nd - b.size() || b[i - (nd - b.size())] == 1;
    if (!dims.empty() && dims.back().ba == ba && dims.back().bb == bb) dims.back().size *= out[i];
    else dims.push_back({out[i], ba, bb});
  }
  BroadcastPlan p;
  int64_t stride_a = 1, stride_b = 1;
  const int k0 = 4 - static_cast<int>(dims.size());  // at most 4: tensors are at most 4-D
  for (int k = 3; k >= k0; --k) {
    const Dim& d = dims[static_cast<size_t>(k - k0)];
    p.size[k] = d.size;
    p.sa[k] = d.ba ? 0 : stride_a;
    p.sb[k] = d.bb ? 0 : stride_b;
    if (!d.ba) stride_a *= d.size;
    if (!d.bb) stride_b *= d.size;
  }
  return p;
}

namespace {
// A run of merged axes of the input (all reduced or all kept): its size and input stride.
struct Run { int64_t size, in_stride; bool reduced; };

int64_t offset_of(int64_t idx, const std::vector<const Run*>& runs) {
  int64_t off = 0;
  for (auto it = runs.rbegin(); it != runs.rend(); ++it) {
    off += (idx % (*it)->size) * (*it)->in_stride;
    idx /= (*it)->size;
  }
  return off;
}
}  // namespace

void reduce_sum(const float* x, const Shape& shape, const std::vector<bool>& reduced, float* out) {
  std::vector<Run> runs;
  for (size_t i = 0; i < shape.size(); ++i) {
    if (shape[i] == 1) continue;
    if (!runs.empty() && runs.back().reduced == reduced[i]) runs.back().size *= shape[i];
    else runs.push_back({shape[i], 0, reduced[i]});
  }
  int64_t n = 1;
  for (auto it = runs.rbegin(); it != runs.rend(); ++it) it->in_stride = n, n *= it->size;
  if (numel_of(shape) == 0) return;  // nothing to add; out was sized by the caller
  std::vector<const Run*> kept, red;  // outer runs (all but the innermost)
  for (size_t i = 0; i + 1 < runs.size(); ++i) (runs[i].reduced ? red : kept).push_back(&runs[i]);
  int64_t nk = 1, nr = 1;
  for (const Run* r : kept) nk *= r->size;
  for (const Run* r : red) nr *= r->size;
  if (runs.empty() || (runs.size() == 1 && !runs[0].reduced)) {  // nothing reduced
    std::copy(x, x + n, out);
  } else if (runs.size() == 1) {  // everything reduced
    out[0] = total_sum(x, n);
  } else if (!runs.back().reduced) {
    // Innermost run kept (I contiguous outputs): out[k, :] = sum over r of x[k, r, :], r in order.
    constexpr int64_t kCols = 256;
    const int64_t inner = runs.back().size, per = (inner + kCols - 1) / kCols;
#pragma omp parallel for schedule(static) if (nk * per > 1 && n > kParallelMin)
    for (int64_t t = 0; t < nk * per; ++t) {
      const int64_t k = t / per, c0 = (t % per) * kCols, c1 = std::min(inner, c0 + kCols);
      float* o = out + k * inner;
      std::fill(o + c0, o + c1, 0.f);
      const int64_t base = offset_of(k, kept);
      for (int64_t r = 0; r < nr; ++r) {
        const float* row = x + base + offset_of(r, red);
        for (int64_t j = c0; j < c1; ++j) o[j] += row[j];
      }
    }
  } else {
    // Innermost run reduced (R contiguous inputs): out[k] = sum over r of row_sum(x[k, r, :]).
    const int64_t inner = runs.back().size;
#pragma omp parallel for schedule(static) if (nk > 1 && n > kParallelMin)
    for (int64_t k = 0; k < nk; ++k) {
      const int64_t base = offset_of(k, kept);
      float s = 0.f;
      for (int64_t r = 0; r < nr; ++r) s += row_sum(x + base + offset_of(r, red), inner);
      out[k] = s;
    }
  }
}

Tensor sum_to(Tensor g, const Shape& target) {
  if (g.shape() == target) return g;
  const size_t nd = g.shape().size(), lead = nd - target.size();
  std::vector<bool> reduced(nd);
  for (size_t i = 0; i < nd; ++i) reduced[i] = i < lead || (target[i - lead] == 1 && g.shape()[i] != 1);
  Tensor out(target);
  reduce_sum(g.data(), g.shape(), reduced, out.data());
  return out;
}

Tensor expand_to(const Tensor& x, const Shape& target) {
  if (x.shape() == target) return x;
  Tensor y(target);
  const BroadcastPlan p = plan_broadcast(target, x.shape(), x.shape());
  broadcast_binary(p, x.data(), x.data(), y.data(), [](float a, float) { return a; });
  return y;
}

}  // namespace mxqat::autograd::detail
