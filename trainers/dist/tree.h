// The fixed reduction tree that makes data-parallel training give the same bits for any number
// of processes: the global batch is split into m micro-batches (a recipe setting, independent of
// the process count), and their gradients are summed over a balanced binary tree on micro-batch
// index, node [lo, hi) = node [lo, mid) + node [mid, hi) with mid = lo + (hi - lo) / 2, element
// by element in float. Each rank owns a contiguous range of micro-batches, sums the largest
// subtrees wholly inside its range, the subtree sums are exchanged (one allgatherv), and every
// rank finishes the same tree in the same order: the result does not depend on who computed what.
#pragma once
#include <cstddef>
#include <cstdint>
#include <functional>
#include <vector>

#include "trainers/dist/dist.h"

namespace mxqat::trainers {

struct Span {
  int64_t lo = 0, hi = 0;  // [lo, hi)
  bool operator==(const Span& o) const { return lo == o.lo && hi == o.hi; }
};

// The micro-batches rank r of n owns: [floor(m r / n), floor(m (r + 1) / n)). Needs 1 <= n <= m
// (throws saying so otherwise), so every rank owns at least one.
Span owned_micro_batches(int64_t m, int n, int r);
// The maximal nodes of the tree over [0, m) lying wholly inside s, left to right.
std::vector<Span> tree_cover(int64_t m, Span s);

// The tree sum of m leaf vectors of `len` floats. leaf(i, out) writes leaf i into out[0, len);
// it is called for this rank's micro-batches only, in descending order (so the rank's first
// micro-batch comes last; whatever a forward pass leaves behind is that micro-batch's).
// `exchange_s`, if given, receives the seconds spent in the exchange and the final additions.
std::vector<float> tree_sum(int64_t m, size_t len, const std::function<void(int64_t, float*)>& leaf,
                            Dist& d, double* exchange_s = nullptr);

}  // namespace mxqat::trainers
