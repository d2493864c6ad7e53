// The data-parallel gradient exchange alone (trainers/dist/tree.h), under mpirun: every process
// owns micro-batches of a tree over M of them, their "gradients" are FLOATS floats each (default
// 1,917,697: the GPT of recipes/kjv_gpt.yaml plus its loss), and the tree is finished in three ways:
//   whole_fresh     one allgatherv of whole subtree sums, every process finishes the whole tree,
//                   in buffers allocated afresh each step (what the step loop did before)
//   whole           the same in buffers kept from step to step
//   slices          reduce-scatter: one alltoallv of slices, each process finishes its slice, one
//                   allgatherv of the finished slices (the step loop's way now), buffers kept
// Before each step a barrier lines the processes up, so the times are transfers and additions, no
// waiting for a slower process. Prints per way the medians (rank 0; the slowest process's median
// in brackets) and the bytes a process receives per step with the resulting GB/s, plus a one-
// process memcpy of the same bytes for scale.
// Usage: mpirun -np N build/bench/bench_dist_exchange [--floats F] [--micro-batches M] [--steps S]
//   (M defaults to N); bench/dist_exchange.sh runs it for np 2 and 4 and several transports.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "autograd/error.h"
#include "trainers/dist/dist.h"
#include "trainers/dist/tree.h"
#include "trainers/util/process.h"

namespace {
using namespace mxqat::trainers;
using Clock = std::chrono::steady_clock;

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0.0 : v[v.size() / 2];
}

// The slowest process's value (every process passes its own).
double slowest(Dist& d, double mine) {
  std::vector<double> all(static_cast<size_t>(d.size()));
  d.allgatherv(&mine, all.data(), std::vector<size_t>(all.size(), sizeof(double)));
  return *std::max_element(all.begin(), all.end());
}

int64_t arg(int argc, char** argv, const char* name, int64_t fallback) {
  for (int i = 1; i + 1 < argc; ++i)
    if (std::strcmp(argv[i], name) == 0) {
      char* end = nullptr;
      const long long v = std::strtoll(argv[i + 1], &end, 10);
      MXQAT_CHECK(end && *end == '\0' && v > 0, name, " wants a positive integer, got '", argv[i + 1], "'");
      return v;
    }
  return fallback;
}
}  // namespace

int main(int argc, char** argv) try {
  dist_init(&argc, &argv);
  tune_allocator();
  Dist& d = dist();
  const int n = d.size();
  const auto len = static_cast<size_t>(arg(argc, argv, "--floats", 1917697));
  const int64_t m = arg(argc, argv, "--micro-batches", n);
  const int steps = static_cast<int>(arg(argc, argv, "--steps", 20));
  owned_micro_batches(m, n, d.rank());  // says what to do when M < N
  const auto leaf = [&](int64_t i, float* out) { std::fill(out, out + len, 1.f + float(i)); };
  if (d.rank() == 0)
    std::printf("%s, %zu floats (%.2f MB) per micro-batch, %lld micro-batches, %d steps\n",
                d.describe().c_str(), len, double(len) * 4e-6, static_cast<long long>(m), steps);
  size_t nodes = 0, own = tree_cover(m, owned_micro_batches(m, n, d.rank())).size();
  for (int r = 0; r < n; ++r) nodes += tree_cover(m, owned_micro_batches(m, n, r)).size();
  struct Way { const char* name; TreeExchange how; bool fresh; };
  for (const Way w : {Way{"whole_fresh", TreeExchange::gather_all, true}, Way{"whole", TreeExchange::gather_all, false},
                      Way{"slices", TreeExchange::reduce_scatter, false}}) {
    TreeSum kept(w.how);
    std::vector<double> ex, sc, fi, ga;
    float check = 0;
    for (int s = 0; s < steps + 1; ++s) {  // the first step warms up
      d.barrier();
      TreeTimes t;
      if (w.fresh) {
        TreeSum fresh(w.how);
        check = fresh.run(m, len, leaf, d, &t)[len / 2];
      } else {
        check = kept.run(m, len, leaf, d, &t)[len / 2];
      }
      if (s == 0) continue;
      ex.push_back(t.exchange_s()), sc.push_back(t.scatter_s), fi.push_back(t.finish_s), ga.push_back(t.gather_s);
    }
    MXQAT_CHECK(check == float(m) * float(m + 1) / 2, "bench_dist_exchange: the tree summed to ", check,
                ", not ", float(m) * float(m + 1) / 2);
    const Span sl = vector_slice(len, n, d.rank());
    const size_t sl_len = static_cast<size_t>(sl.hi - sl.lo);
    const double got = 4.0 * double(w.how == TreeExchange::gather_all ? (nodes - own) * len
                                                                       : (nodes - own) * sl_len + (len - sl_len));
    const double e = median(ex), e_max = slowest(d, e);
    const double s = median(sc), f = median(fi), g = median(ga);
    const double s_max = slowest(d, s), f_max = slowest(d, f), g_max = slowest(d, g);
    if (d.rank() == 0)
      std::printf("%-12s exchange %7.2f ms [%7.2f]: send %7.2f [%7.2f], additions %6.2f [%6.2f], gather %6.2f "
                  "[%6.2f]; %6.2f MB received per process, %5.2f GB/s\n",
                  w.name, 1e3 * e, 1e3 * e_max, 1e3 * s, 1e3 * s_max, 1e3 * f, 1e3 * f_max, 1e3 * g, 1e3 * g_max,
                  got * 1e-6, got * 1e-9 / (s + g));
  }
  if (d.rank() == 0 && nodes > own) {  // memcpy of what the whole way receives, one process, for scale
    std::vector<float> a((nodes - own) * len, 1.f), b(a.size());
    std::vector<double> t;
    for (int s = 0; s < 5; ++s) {
      const auto t0 = Clock::now();
      std::memcpy(b.data(), a.data(), a.size() * sizeof(float));
      t.push_back(std::chrono::duration<double>(Clock::now() - t0).count());
    }
    std::printf("memcpy       %.2f MB in %.2f ms: %.2f GB/s (one thread, one process)\n", 4e-6 * double(a.size()),
                1e3 * median(t), 4e-9 * double(a.size()) / median(t));
  }
  dist_finalize();
  return 0;
} catch (const std::exception& e) {
  std::fprintf(stderr, "bench_dist_exchange: %s\n", e.what());
  if (mxqat::trainers::dist().size() > 1) mxqat::trainers::dist().abort(1);
  return 1;
}
