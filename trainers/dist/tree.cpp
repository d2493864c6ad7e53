// The fixed reduction tree (see tree.h).
#include "trainers/dist/tree.h"

#include <algorithm>
#include <chrono>
#include <climits>
#include <map>
#include <utility>

#include "autograd/error.h"

namespace mxqat::trainers {

namespace {
using Clock = std::chrono::steady_clock;
using Have = std::map<std::pair<int64_t, int64_t>, const float*>;

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

// The right-hand node's buffer at tree depth `depth` (kept from call to call).
float* scratch(std::vector<std::vector<float>>& s, size_t depth, size_t len) {
  if (s.size() <= depth) s.resize(depth + 1);
  if (s[depth].size() < len) s[depth].resize(len);
  return s[depth].data();
}

// Node [lo, hi) from its leaves, right half first (see tree.h on the order).
void sum_local(int64_t lo, int64_t hi, size_t len, const std::function<void(int64_t, float*)>& leaf,
               float* out, std::vector<std::vector<float>>& s, size_t depth) {
  if (hi - lo == 1) {
    leaf(lo, out);
    return;
  }
  const int64_t mid = mid_of(lo, hi);
  float* right = scratch(s, depth, len);
  sum_local(mid, hi, len, leaf, right, s, depth + 1);
  sum_local(lo, mid, len, leaf, out, s, depth + 1);
  add_into(out, right, len);
}

// Node [lo, hi) from the exchanged subtree sums (`len` elements of each: a slice or the whole).
void finish(int64_t lo, int64_t hi, size_t len, const Have& have, float* out,
            std::vector<std::vector<float>>& s, size_t depth) {
  const auto it = have.find({lo, hi});
  if (it != have.end()) {
    std::copy(it->second, it->second + len, out);
    return;
  }
  MXQAT_CHECK(hi - lo > 1, "tree_sum: micro-batch ", lo, " was computed by no process (a bug)");
  const int64_t mid = mid_of(lo, hi);
  float* right = scratch(s, depth, len);
  finish(mid, hi, len, have, right, s, depth + 1);
  finish(lo, mid, len, have, out, s, depth + 1);
  add_into(out, right, len);
}

double since(Clock::time_point& t) {
  const Clock::time_point now = Clock::now();
  const double s = std::chrono::duration<double>(now - t).count();
  t = now;
  return s;
}

void check_int_bytes(size_t total, const char* what) {
  MXQAT_CHECK(total <= size_t(INT_MAX), "tree_sum: the ", what, " moves ", total, " bytes, more than "
              "MPI's int counts allow (", INT_MAX, "); use fewer micro-batches per process or fewer parameters");
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

Span vector_slice(size_t len, int n, int s) {
  MXQAT_CHECK(n >= 1 && s >= 0 && s < n, "vector_slice: slice ", s, " of ", n);
  const auto l = static_cast<int64_t>(len);
  return {l * s / n, l * (s + 1) / n};
}

const std::vector<float>& TreeSum::run(int64_t m, size_t len, const std::function<void(int64_t, float*)>& leaf,
                                       Dist& d, TreeTimes* times) {
  TreeTimes t;
  Clock::time_point t0 = Clock::now();
  const int n = d.size(), me = d.rank();
  const std::vector<Span> nodes = tree_cover(m, owned_micro_batches(m, n, me));
  local_.resize(nodes.size() * len);
  for (size_t k = nodes.size(); k-- > 0;)  // right to left: the rank's first micro-batch last
    sum_local(nodes[k].lo, nodes[k].hi, len, leaf, local_.data() + k * len, scratch_, 0);
  t.local_s = since(t0);
  if (n == 1) {  // the cover of [0, m) is the root itself
    if (times) *times = t;
    return local_;
  }
  out_.resize(len);
  std::vector<std::vector<Span>> covers(static_cast<size_t>(n));
  size_t all_nodes = 0;
  for (int r = 0; r < n; ++r) {
    covers[size_t(r)] = tree_cover(m, owned_micro_batches(m, n, r));
    all_nodes += covers[size_t(r)].size();
  }
  Have have;
  if (how_ == TreeExchange::gather_all) {
    std::vector<size_t> bytes(static_cast<size_t>(n));
    for (int r = 0; r < n; ++r) bytes[size_t(r)] = covers[size_t(r)].size() * len * sizeof(float);
    check_int_bytes(all_nodes * len * sizeof(float), "allgatherv of the subtree sums");
    recv_.resize(all_nodes * len);
    d.allgatherv(local_.data(), recv_.data(), bytes);
    t.scatter_s = since(t0);
    const float* p = recv_.data();
    for (const auto& c : covers)
      for (const Span& s : c) have[{s.lo, s.hi}] = p, p += len;
    finish(0, m, len, have, out_.data(), scratch_, 0);
    t.finish_s = since(t0);
  } else {
    // Slice s of each of my subtree sums goes to rank s: laid out by destination, then node.
    const size_t k_me = nodes.size();
    std::vector<size_t> send_bytes(static_cast<size_t>(n)), recv_bytes(static_cast<size_t>(n));
    const Span mine = vector_slice(len, n, me);
    const auto my_len = static_cast<size_t>(mine.hi - mine.lo);
    for (int s = 0; s < n; ++s) {
      const Span sl = vector_slice(len, n, s);
      send_bytes[size_t(s)] = k_me * static_cast<size_t>(sl.hi - sl.lo) * sizeof(float);
      recv_bytes[size_t(s)] = covers[size_t(s)].size() * my_len * sizeof(float);
    }
    check_int_bytes(k_me * len * sizeof(float), "alltoallv of the subtree sums");
    check_int_bytes(all_nodes * my_len * sizeof(float), "alltoallv of the subtree sums");
    const float* send = local_.data();
    if (k_me > 1) {  // one node: its slices already lie in rank order
      send_.resize(k_me * len);
      float* o = send_.data();
      for (int s = 0; s < n; ++s) {
        const Span sl = vector_slice(len, n, s);
        for (size_t k = 0; k < k_me; ++k)
          o = std::copy(local_.data() + k * len + sl.lo, local_.data() + k * len + sl.hi, o);
      }
      send = send_.data();
    }
    recv_.resize(all_nodes * my_len);
    d.alltoallv(send, send_bytes, recv_.data(), recv_bytes);
    t.scatter_s = since(t0);
    const float* p = recv_.data();
    for (const auto& c : covers)
      for (const Span& s : c) have[{s.lo, s.hi}] = p, p += my_len;
    finish(0, m, my_len, have, out_.data() + mine.lo, scratch_, 0);
    t.finish_s = since(t0);
    std::vector<size_t> bytes(static_cast<size_t>(n));
    for (int s = 0; s < n; ++s) {
      const Span sl = vector_slice(len, n, s);
      bytes[size_t(s)] = static_cast<size_t>(sl.hi - sl.lo) * sizeof(float);
    }
    d.allgatherv(nullptr, out_.data(), bytes);  // my slice is in place
    t.gather_s = since(t0);
  }
  if (times) *times = t;
  return out_;
}

std::vector<float> tree_sum(int64_t m, size_t len, const std::function<void(int64_t, float*)>& leaf,
                            Dist& d, double* exchange_s, TreeExchange how) {
  TreeSum t(how);
  TreeTimes times;
  std::vector<float> out = t.run(m, len, leaf, d, &times);
  if (exchange_s) *exchange_s = times.exchange_s();
  return out;
}

}  // namespace mxqat::trainers
