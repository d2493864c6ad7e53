// The fixed reduction tree (see tree.h).
#include "trainers/dist/tree.h"

#include <chrono>
#include <map>
#include <utility>

#include "autograd/error.h"

namespace mxqat::trainers {

namespace {
int64_t mid_of(int64_t lo, int64_t hi) { return lo + (hi - lo) / 2; }

void add_into(float* a, const float* b, size_t len) {
  const auto n = static_cast<int64_t>(len);
#pragma omp parallel for schedule(static) if (n > (1 << 16))
  for (int64_t i = 0; i < n; ++i) a[i] += b[i];
}

void cover(int64_t lo, int64_t hi, Span s, std::vector<Span>& out) {
  if (hi <= s.lo || lo >= s.hi) return;
  if (lo >= s.lo && hi <= s.hi) {
    out.push_back({lo, hi});
    return;
  }
  const int64_t mid = mid_of(lo, hi);
  cover(lo, mid, s, out);
  cover(mid, hi, s, out);
}

// Node [lo, hi) from its leaves, right half first (see tree.h on the order).
void sum_local(int64_t lo, int64_t hi, size_t len, const std::function<void(int64_t, float*)>& leaf,
               float* out) {
  if (hi - lo == 1) {
    leaf(lo, out);
    return;
  }
  const int64_t mid = mid_of(lo, hi);
  std::vector<float> right(len);
  sum_local(mid, hi, len, leaf, right.data());
  sum_local(lo, mid, len, leaf, out);
  add_into(out, right.data(), len);
}

// Node [lo, hi) from the exchanged subtree sums.
void finish(int64_t lo, int64_t hi, size_t len, const std::map<std::pair<int64_t, int64_t>, const float*>& have,
            float* out) {
  const auto it = have.find({lo, hi});
  if (it != have.end()) {
    std::copy(it->second, it->second + len, out);
    return;
  }
  MXQAT_CHECK(hi - lo > 1, "tree_sum: micro-batch ", lo, " was computed by no process (a bug)");
  const int64_t mid = mid_of(lo, hi);
  std::vector<float> right(len);
  finish(mid, hi, len, have, right.data());
  finish(lo, mid, len, have, out);
  add_into(out, right.data(), len);
}
}  // namespace

Span owned_micro_batches(int64_t m, int n, int r) {
  MXQAT_CHECK(n >= 1 && int64_t(n) <= m, n, " processes but ", m, " micro-batches per step: every "
              "process needs at least one; set train.micro_batches (qat.micro_batches for qat) to a "
              "divisor of the batch size that is at least ", n, ", or start fewer processes");
  MXQAT_CHECK(r >= 0 && r < n, "rank ", r, " is outside 0..", n - 1);
  return {m * r / n, m * (r + 1) / n};
}

std::vector<Span> tree_cover(int64_t m, Span s) {
  std::vector<Span> out;
  if (m > 0) cover(0, m, s, out);
  return out;
}

std::vector<float> tree_sum(int64_t m, size_t len, const std::function<void(int64_t, float*)>& leaf,
                            Dist& d, double* exchange_s) {
  const int n = d.size();
  const Span mine = owned_micro_batches(m, n, d.rank());
  const std::vector<Span> nodes = tree_cover(m, mine);
  std::vector<float> local(nodes.size() * len);
  for (size_t k = nodes.size(); k-- > 0;)  // right to left: the rank's first micro-batch last
    sum_local(nodes[k].lo, nodes[k].hi, len, leaf, local.data() + k * len);
  const auto t0 = std::chrono::steady_clock::now();
  std::vector<float> out;
  if (n == 1) {
    out = std::move(local);  // the cover of [0, m) is the root itself
  } else {
    std::vector<size_t> bytes(static_cast<size_t>(n));
    std::vector<Span> all_nodes;
    for (int r = 0; r < n; ++r) {
      const std::vector<Span> c = tree_cover(m, owned_micro_batches(m, n, r));
      bytes[static_cast<size_t>(r)] = c.size() * len * sizeof(float);
      all_nodes.insert(all_nodes.end(), c.begin(), c.end());
    }
    std::vector<float> all(all_nodes.size() * len);
    d.allgatherv(local.data(), all.data(), bytes);
    std::map<std::pair<int64_t, int64_t>, const float*> have;
    for (size_t k = 0; k < all_nodes.size(); ++k) have[{all_nodes[k].lo, all_nodes[k].hi}] = all.data() + k * len;
    out.resize(len);
    finish(0, m, len, have, out.data());
  }
  if (exchange_s) *exchange_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return out;
}

}  // namespace mxqat::trainers
