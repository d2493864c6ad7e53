// The fixed reduction tree that makes data-parallel training give the same bits for any number
// of processes: the global batch is split into m micro-batches (a recipe setting, independent of
// the process count), and their gradients are summed over a balanced binary tree on micro-batch
// index, node [lo, hi) = node [lo, mid) + node [mid, hi) with mid = lo + (hi - lo) / 2, element
// by element in float. Each rank owns a contiguous range of micro-batches and sums the largest
// subtrees wholly inside its range; then the tree is finished from those subtree sums, in the same
// order whoever computed what, so the result does not depend on the process count.
//
// Finishing the tree (TreeExchange::reduce_scatter, the default): the vector of `len` floats is cut
// into n contiguous slices, slice s = [len s / n, len (s + 1) / n); every rank sends slice s of its
// subtree sums to rank s (one alltoallv), rank s finishes the tree for slice s alone, and one
// allgatherv of the finished slices gives every rank the whole sum. Each element still goes through
// the same float additions in the same order (the tree is the same for every element), so the bits
// equal those of TreeExchange::gather_all (one allgatherv of whole subtree sums, every rank then
// finishing the whole tree: n times the bytes and the additions), which stays as the reference.
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
// Slice s of n of a vector of len elements: [len s / n, len (s + 1) / n).
Span vector_slice(size_t len, int n, int s);

enum class TreeExchange { reduce_scatter, gather_all };

// Where one tree_sum's time went, in seconds; all from the end of this rank's own subtree sums.
struct TreeTimes {
  double local_s = 0;     // this rank's micro-batches (the leaves) and its subtree sums
  double scatter_s = 0;   // alltoallv of the slices (gather_all: the allgatherv), incl. any wait
                          // for a slower rank
  double finish_s = 0;    // the tree's remaining additions on this rank
  double gather_s = 0;    // allgatherv of the finished slices (reduce_scatter only)
  double exchange_s() const { return scatter_s + finish_s + gather_s; }
};

// The tree sum of m leaf vectors of `len` floats. leaf(i, out) writes leaf i into out[0, len);
// it is called for this rank's micro-batches only, in descending order (so the rank's first
// micro-batch comes last; whatever a forward pass leaves behind is that micro-batch's).
// The buffers stay allocated from one call to the next (a step loop calls it every step with the
// same sizes: no fresh pages to fault in each time).
class TreeSum {
 public:
  explicit TreeSum(TreeExchange how = TreeExchange::reduce_scatter) : how_(how) {}
  // The sum, valid until the next call. Every rank of `d` calls it with the same m and len.
  const std::vector<float>& run(int64_t m, size_t len, const std::function<void(int64_t, float*)>& leaf,
                                Dist& d, TreeTimes* times = nullptr);

 private:
  TreeExchange how_;
  std::vector<float> local_, send_, recv_, out_;
  std::vector<std::vector<float>> scratch_;  // one right-hand node per tree depth
};

// One call of a fresh TreeSum (tests, one-off sums). `exchange_s`, if given, receives the seconds
// spent in the exchange and the final additions.
std::vector<float> tree_sum(int64_t m, size_t len, const std::function<void(int64_t, float*)>& leaf,
                            Dist& d, double* exchange_s = nullptr,
                            TreeExchange how = TreeExchange::reduce_scatter);

}  // namespace mxqat::trainers
