// Data-parallel training (trainers/dist/): the fixed reduction tree against a serial reference
// for every process count (ranks simulated by threads), finished by slices (reduce-scatter) and
// by whole vectors with the same bits, buffers reused, micro-batches against the whole batch,
// dropout masks of a micro-batch, the PTQ calibration passes' ordered gather (ranks simulated by
// threads), and under mpirun (when this build has MPI and mpirun is on the PATH): bitwise equal
// checkpoints for -np 1, 2, 3 (4) on a Fashion MLP and a tiny gpt QAT run, a resume with another
// process count, byte-equal `mxqat ptq` outputs for -np 1, 2, 3, and a killed rank that stops the job.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstring>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <random>
#include <thread>

#include "autograd/ops.h"
#include "layers/basic.h"
#include "tests/test_util.h"
#include "trainers/dist/dist.h"
#include "trainers/dist/tree.h"
#include "trainers/io/ckpt.h"
#include "trainers/stages/calib_inputs.h"
#include "trainers/stages/train_stage.h"

namespace mxqat::trainers {
namespace {

namespace fs = std::filesystem;
using mxqat::testing::fresh_dir;

// ---- the tree, with ranks simulated by threads -------------------------------------------------

// What the threads share: one collective at a time, a generation counter as the barrier.
struct Exchange {
  std::mutex mu;
  std::condition_variable cv;
  int n = 0, arrived = 0, generation = 0;
  std::vector<const void*> shares;
  std::vector<const std::vector<size_t>*> counts;  // alltoallv: what each rank sends to each
  std::vector<size_t> received;                    // bytes each rank got from the others
};

class ThreadDist final : public Dist {
 public:
  ThreadDist(Exchange& x, int rank) : x_(x), rank_(rank) {}
  int rank() const override { return rank_; }
  int size() const override { return x_.n; }
  void allgatherv(const void* mine, void* all, const std::vector<size_t>& bytes) override {
    std::unique_lock<std::mutex> lock(x_.mu);
    size_t at = 0;  // where my share lies in `all`
    for (int r = 0; r < rank_; ++r) at += bytes[size_t(r)];
    x_.shares[size_t(rank_)] = mine ? mine : static_cast<const char*>(all) + at;
    arrive(lock);
    std::vector<char> out;
    for (int r = 0; r < x_.n; ++r) {  // every share stays alive until the second barrier below
      const auto* p = static_cast<const char*>(x_.shares[size_t(r)]);
      out.insert(out.end(), p, p + bytes[size_t(r)]);
      if (r != rank_) x_.received[size_t(rank_)] += bytes[size_t(r)];
    }
    arrive(lock);  // nobody reads my `all` (an in-place share) any more
    if (!out.empty()) std::memcpy(all, out.data(), out.size());
  }
  void alltoallv(const void* send, const std::vector<size_t>& send_bytes, void* recv,
                 const std::vector<size_t>& recv_bytes) override {
    std::unique_lock<std::mutex> lock(x_.mu);
    x_.shares[size_t(rank_)] = send;
    x_.counts[size_t(rank_)] = &send_bytes;
    arrive(lock);
    auto* out = static_cast<char*>(recv);
    for (int r = 0; r < x_.n; ++r) {  // rank r's part for me: after its parts for ranks 0..me-1
      const std::vector<size_t>& c = *x_.counts[size_t(r)];
      size_t at = 0;
      for (int s = 0; s < rank_; ++s) at += c[size_t(s)];
      if (c[size_t(rank_)] != recv_bytes[size_t(r)]) std::abort();  // a caller's bug: sizes disagree
      if (c[size_t(rank_)] > 0) std::memcpy(out, static_cast<const char*>(x_.shares[size_t(r)]) + at, c[size_t(rank_)]);
      if (r != rank_) x_.received[size_t(rank_)] += c[size_t(rank_)];
      out += recv_bytes[size_t(r)];
    }
    arrive(lock);
  }
  void broadcast(void*, size_t, int) override {}
  void barrier() override {}
  [[noreturn]] void abort(int) override { std::abort(); }
  std::string describe() const override { return "threads"; }

 private:
  void arrive(std::unique_lock<std::mutex>& lock) {  // a barrier of the n threads
    const int gen = x_.generation;
    if (++x_.arrived == x_.n) {
      x_.arrived = 0;
      ++x_.generation;
      x_.cv.notify_all();
    } else {
      x_.cv.wait(lock, [&] { return x_.generation != gen; });
    }
  }
  Exchange& x_;
  int rank_;
};

// Leaves whose sums depend on the order of addition (mixed magnitudes).
std::vector<std::vector<float>> make_leaves(int64_t m, size_t len) {
  std::mt19937 rng(static_cast<unsigned>(m * 7919 + len));
  std::normal_distribution<float> g(0.f, 1.f);
  std::vector<std::vector<float>> leaves(static_cast<size_t>(m), std::vector<float>(len));
  for (auto& l : leaves)
    for (auto& v : l) v = g(rng) * std::pow(10.f, float(int(rng() % 9) - 4));
  return leaves;
}

// The reference, written independently: node [lo, hi) = [lo, mid) + [mid, hi), mid = lo + (hi-lo)/2.
std::vector<float> reference(const std::vector<std::vector<float>>& leaves, int64_t lo, int64_t hi) {
  if (hi - lo == 1) return leaves[size_t(lo)];
  const int64_t mid = lo + (hi - lo) / 2;
  std::vector<float> a = reference(leaves, lo, mid);
  const std::vector<float> b = reference(leaves, mid, hi);
  for (size_t i = 0; i < a.size(); ++i) a[i] += b[i];
  return a;
}

// tree_sum on n simulated ranks: every rank's result, and the leaves each rank computed in order.
std::vector<std::vector<float>> run_ranks(const std::vector<std::vector<float>>& leaves, int n,
                                          std::vector<std::vector<int64_t>>* calls = nullptr,
                                          TreeExchange how = TreeExchange::reduce_scatter,
                                          std::vector<size_t>* received = nullptr) {
  const int64_t m = static_cast<int64_t>(leaves.size());
  const size_t len = leaves[0].size();
  Exchange x;
  x.n = n;
  x.shares.resize(size_t(n));
  x.counts.resize(size_t(n));
  x.received.assign(size_t(n), 0);
  std::vector<std::vector<float>> out(static_cast<size_t>(n));
  std::vector<std::vector<int64_t>> seen(static_cast<size_t>(n));
  std::vector<std::thread> threads;
  for (int r = 0; r < n; ++r)
    threads.emplace_back([&, r] {
      ThreadDist d(x, r);
      out[size_t(r)] = tree_sum(m, len, [&](int64_t i, float* o) {
        seen[size_t(r)].push_back(i);
        std::copy(leaves[size_t(i)].begin(), leaves[size_t(i)].end(), o);
      }, d, nullptr, how);
    });
  for (auto& t : threads) t.join();
  if (calls) *calls = seen;
  if (received) *received = x.received;
  return out;
}

bool same_bits(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

TEST(DistTree, EveryProcessCountGivesTheReferenceBits) {
  bool order_matters = false;  // the leaves are such that another order of addition differs
  for (int64_t m = 1; m <= 13; ++m) {
    const auto leaves = make_leaves(m, 37);
    const std::vector<float> ref = reference(leaves, 0, m);
    std::vector<float> left_to_right = leaves[0];
    for (int64_t i = 1; i < m; ++i)
      for (size_t k = 0; k < left_to_right.size(); ++k) left_to_right[k] += leaves[size_t(i)][k];
    order_matters = order_matters || !same_bits(left_to_right, ref);
    for (int n = 1; n <= std::min<int64_t>(m, 6); ++n) {
      std::vector<std::vector<int64_t>> calls;
      const auto got = run_ranks(leaves, n, &calls);
      for (int r = 0; r < n; ++r) {
        EXPECT_TRUE(same_bits(got[size_t(r)], ref)) << "m " << m << " n " << n << " rank " << r;
        // each rank computes exactly its own micro-batches, its first one last
        const Span own = owned_micro_batches(m, n, r);
        ASSERT_EQ(int64_t(calls[size_t(r)].size()), own.hi - own.lo) << "m " << m << " n " << n;
        EXPECT_EQ(calls[size_t(r)].back(), own.lo);
      }
    }
  }
  EXPECT_TRUE(order_matters) << "the test leaves do not tell orders of addition apart";
}

// The slice path (reduce-scatter, then allgatherv of the finished slices) against the whole-vector
// path (allgatherv of whole subtree sums) and the reference: the same bits on every rank, also with
// fewer elements than ranks (empty slices) and ranks holding several subtrees; n times fewer bytes.
TEST(DistTree, SlicesGiveTheBitsOfTheWholeVectorWithFewerBytes) {
  for (size_t len : {size_t(1), size_t(3), size_t(37), size_t(1000)})
    for (int64_t m : {2, 4, 5, 8, 11})
      for (int n = 2; n <= std::min<int64_t>(m, 6); ++n) {
        const auto leaves = make_leaves(m, len);
        const std::vector<float> ref = reference(leaves, 0, m);
        std::vector<size_t> got_rs, got_all;
        const auto rs = run_ranks(leaves, n, nullptr, TreeExchange::reduce_scatter, &got_rs);
        const auto all = run_ranks(leaves, n, nullptr, TreeExchange::gather_all, &got_all);
        size_t nodes = 0;
        for (int r = 0; r < n; ++r) nodes += tree_cover(m, owned_micro_batches(m, n, r)).size();
        for (int r = 0; r < n; ++r) {
          const std::string at = "len " + std::to_string(len) + " m " + std::to_string(m) + " n " +
                                 std::to_string(n) + " rank " + std::to_string(r);
          EXPECT_TRUE(same_bits(rs[size_t(r)], ref)) << at;
          EXPECT_TRUE(same_bits(all[size_t(r)], ref)) << at;
          const size_t own = tree_cover(m, owned_micro_batches(m, n, r)).size();
          EXPECT_EQ(got_all[size_t(r)], (nodes - own) * len * sizeof(float)) << at;
          const Span sl = vector_slice(len, n, r);
          const auto sl_len = size_t(sl.hi - sl.lo);
          // the other ranks' subtree sums of my slice, then every slice but mine
          EXPECT_EQ(got_rs[size_t(r)], ((nodes - own) * sl_len + (len - sl_len)) * sizeof(float)) << at;
        }
      }
}

TEST(DistTree, SlicesCoverTheVectorInOrder) {
  for (size_t len : {0, 1, 5, 37, 1000})
    for (int n = 1; n <= 7; ++n) {
      int64_t next = 0;
      for (int s = 0; s < n; ++s) {
        const Span sl = vector_slice(len, n, s);
        EXPECT_EQ(sl.lo, next);
        EXPECT_GE(sl.hi, sl.lo);
        EXPECT_LE(sl.hi - sl.lo, int64_t(len) / n + 1);  // balanced
        next = sl.hi;
      }
      EXPECT_EQ(next, int64_t(len));
    }
  EXPECT_ERROR_HAS(vector_slice(10, 3, 3), "slice 3 of 3");
}

// A TreeSum keeps its buffers from call to call: nothing of an earlier call (other sizes, other
// leaves) leaks into a later one.
TEST(DistTree, ReusedBuffersGiveFreshBits) {
  struct Call { int64_t m; size_t len; };
  const std::vector<Call> calls = {{8, 50}, {3, 20}, {8, 50}, {5, 7}, {8, 60}};
  for (int n : {1, 2, 3}) {
    Exchange x;
    x.n = n;
    x.shares.resize(size_t(n));
    x.counts.resize(size_t(n));
    x.received.assign(size_t(n), 0);
    std::vector<int> bad(size_t(n), 0);
    std::vector<std::thread> threads;
    for (int r = 0; r < n; ++r)
      threads.emplace_back([&, r] {
        ThreadDist d(x, r);
        TreeSum t;
        for (size_t k = 0; k < calls.size(); ++k) {
          if (calls[k].m < n) continue;
          const auto leaves = make_leaves(calls[k].m, calls[k].len + k);  // other values each call
          const std::vector<float>& got = t.run(calls[k].m, leaves[0].size(), [&](int64_t i, float* o) {
            std::copy(leaves[size_t(i)].begin(), leaves[size_t(i)].end(), o);
          }, d);
          if (!same_bits(got, reference(leaves, 0, calls[k].m))) ++bad[size_t(r)];
        }
      });
    for (auto& t : threads) t.join();
    for (int r = 0; r < n; ++r) EXPECT_EQ(bad[size_t(r)], 0) << "n " << n << " rank " << r;
  }
}

// The one-process Dist (no mpirun): its collectives copy, in place or not, and refuse shares
// that do not fit one process.
TEST(DistSerial, CollectivesOfOneProcess) {
  Dist& d = dist();
  ASSERT_EQ(d.size(), 1);
  const std::vector<float> a = {1.f, 2.f, 3.f};
  std::vector<float> b(3, 0.f);
  d.alltoallv(a.data(), {12}, b.data(), {12});
  EXPECT_EQ(b, a);
  std::vector<float> c(3, 0.f);
  d.allgatherv(a.data(), c.data(), {12});
  EXPECT_EQ(c, a);
  d.allgatherv(nullptr, c.data(), {12});  // in place: unchanged
  EXPECT_EQ(c, a);
  EXPECT_ERROR_HAS(d.alltoallv(a.data(), {12}, b.data(), {8}), "sends 12 bytes", "expects 8");
  EXPECT_ERROR_HAS(d.alltoallv(a.data(), {4, 8}, b.data(), {4, 8}), "2 and 2 shares for 1 process");
}

TEST(DistTree, RangesAndCovers) {
  for (int64_t m = 1; m <= 20; ++m)
    for (int n = 1; n <= m; ++n) {
      int64_t next = 0;
      for (int r = 0; r < n; ++r) {
        const Span s = owned_micro_batches(m, n, r);
        EXPECT_EQ(s.lo, next);
        EXPECT_GT(s.hi, s.lo);
        int64_t c = s.lo;
        for (const Span& node : tree_cover(m, s)) {  // contiguous, inside, left to right
          EXPECT_EQ(node.lo, c);
          c = node.hi;
        }
        EXPECT_EQ(c, s.hi);
        next = s.hi;
      }
      EXPECT_EQ(next, m);
    }
  EXPECT_EQ(tree_cover(8, {0, 8}).size(), 1u);
  EXPECT_EQ(tree_cover(8, {1, 7}).size(), 4u);  // [1,2) [2,4) [4,6) [6,7)
  EXPECT_ERROR_HAS(owned_micro_batches(2, 3, 0), "3 processes but 2 micro-batches", "micro_batches");
}

// ---- the calibration passes' ordered gather (trainers/stages/calib_inputs.h) ---------------------

// Item i: a tensor whose shape and values depend on i (item 3 is empty, like a batch with no rows).
autograd::Tensor calib_item(int64_t i) {
  const int64_t rows = i == 3 ? 0 : 1 + (i * 5) % 7;
  autograd::Tensor t({rows, 3 + i % 2});
  for (int64_t k = 0; k < t.size(); ++k) t[k] = std::ldexp(float(k + 1), int(i % 5) - 2) - float(i);
  return t;
}

// On n simulated ranks, for m items and a cap on the bytes of one exchange: every rank consumes
// items 0..m-1 in order with the serial bits, and each item is computed once, by one rank.
void check_ordered_gather(int64_t m, int n, size_t cap) {
  Exchange x;
  x.n = n;
  x.shares.resize(size_t(n));
  x.counts.resize(size_t(n));
  x.received.assign(size_t(n), 0);
  std::vector<std::vector<int64_t>> computed(static_cast<size_t>(n)), consumed(static_cast<size_t>(n));
  std::vector<int> bad(static_cast<size_t>(n), 0);
  std::vector<std::thread> threads;
  for (int r = 0; r < n; ++r)
    threads.emplace_back([&, r] {
      ThreadDist d(x, r);
      for_each_in_order(m, [&](int64_t i) {
        computed[size_t(r)].push_back(i);
        return calib_item(i);
      }, [&](int64_t i, const autograd::Tensor& t) {
        consumed[size_t(r)].push_back(i);
        const autograd::Tensor want = calib_item(i);
        if (t.shape() != want.shape() || !t.same_bits(want)) ++bad[size_t(r)];
      }, d, cap);
    });
  for (auto& t : threads) t.join();
  std::vector<int64_t> all, order;
  for (int64_t i = 0; i < m; ++i) order.push_back(i);
  for (int r = 0; r < n; ++r) {
    EXPECT_EQ(consumed[size_t(r)], order) << "m " << m << " n " << n << " rank " << r;
    EXPECT_EQ(bad[size_t(r)], 0) << "m " << m << " n " << n << " rank " << r << " cap " << cap;
    all.insert(all.end(), computed[size_t(r)].begin(), computed[size_t(r)].end());
    if (n > 1) {  // round-robin: rank r computes r, r + n, ...
      for (size_t k = 0; k < computed[size_t(r)].size(); ++k) EXPECT_EQ(computed[size_t(r)][k], r + int64_t(k) * n);
    }
  }
  std::sort(all.begin(), all.end());
  EXPECT_EQ(all, order) << "m " << m << " n " << n;
}

TEST(DistCalib, EveryProcessConsumesTheSerialSequence) {
  for (int64_t m = 0; m <= 7; ++m)
    for (int n = 1; n <= 4; ++n) {
      check_ordered_gather(m, n, 0);   // one exchange per round
      check_ordered_gather(m, n, 10);  // in pieces of a few bytes per process
    }
}

// ---- micro-batches in one process ---------------------------------------------------------------

TEST(DistMicroBatch, DropoutMaskOfASliceIsTheBatchsSlice) {
  autograd::Tensor x({6, 5}, 1.f);
  const autograd::Tensor whole = autograd::dropout(autograd::Var(x), 0.5f, 99, true).value();
  autograd::Tensor rows({2, 5}, 1.f);
  const autograd::Tensor part = autograd::dropout(autograd::Var(rows), 0.5f, 99, true, 3 * 5).value();
  for (int64_t i = 0; i < 10; ++i) EXPECT_EQ(part[i], whole[15 + i]) << i;
  // the module: first sample 3 of the batch gives the same slice
  layers::Dropout d(0.5f, 7), e(0.5f, 7);
  const autograd::Tensor dw = d.forward(autograd::Var(x)).value();
  e.set_first_sample(3);
  const autograd::Tensor de = e.forward(autograd::Var(rows)).value();
  for (int64_t i = 0; i < 10; ++i) EXPECT_EQ(de[i], dw[15 + i]) << i;
}

const char* kMlp = R"(name: dp
seed: 3
data: {dataset: fashion_mnist, batch_size: 24, val_size: 120, train_limit: 600, test_limit: 120}
model: {type: mlp, hidden: [20], activation: relu, dropout: 0.1}
train:
  steps: 10
  optimizer: {type: sgd, lr: 0.05, momentum: 0.9}
  grad_clip: 1.0
  label_smoothing: 0.1
  eval_every: 5
  log_every: 5
)";

// The micro-batch gradients sum to the whole batch's mean gradient: after SGD steps the weights
// agree with micro_batches 1 to float rounding (a missing 1/M scale would be off by a factor).
TEST(DistMicroBatch, MicroBatchesSumToTheBatchGradient) {
  fs::path a = fresh_dir("mb1"), b = fresh_dir("mb4");
  train(parse_recipe(kMlp, "<dp>", {"train.grad_clip=0"}), TrainOptions{a.string(), false, -1});
  train(parse_recipe(kMlp, "<dp>", {"train.grad_clip=0", "train.micro_batches=4"}),
        TrainOptions{b.string(), false, -1});
  const Checkpoint ka = load_checkpoint((a / "checkpoint.h5").string());
  const Checkpoint kb = load_checkpoint((b / "checkpoint.h5").string());
  ASSERT_EQ(ka.params.size(), kb.params.size());
  bool any_differs = false;
  for (size_t i = 0; i < ka.params.size(); ++i) {
    const auto& p = ka.params[i].second;
    const auto& q = kb.params[i].second;
    const float diff = (p.arr() - q.arr()).abs().maxCoeff(), scale = p.arr().abs().maxCoeff();
    EXPECT_LT(diff, 1e-4f * scale + 1e-6f) << ka.params[i].first;
    any_differs = any_differs || !p.same_bits(q);
  }
  EXPECT_TRUE(any_differs) << "micro_batches 4 should round differently from 1";
  EXPECT_ERROR_HAS(parse_recipe(kMlp, "<dp>", {"train.micro_batches=5"}), "micro_batches 5",
                   "batch_size 24");
  fs::remove_all(a);
  fs::remove_all(b);
}

// ---- under mpirun ---------------------------------------------------------------------------------

using Shell = mxqat::testing::CliResult;
Shell sh(const std::string& cmd) { return mxqat::testing::run_shell(cmd); }

// mpirun with the flags a CI container needs (root, more processes than cores, no CMA). In a
// sanitizer build the ranks take tests/lsan.supp (OpenMPI's own allocations left at exit; the
// variables do nothing elsewhere).
std::string mpirun(int np) {
  return "OMP_NUM_THREADS=1 ASAN_OPTIONS=\"$ASAN_OPTIONS:fast_unwind_on_malloc=0\" "
         "LSAN_OPTIONS=suppressions=" MXQAT_SOURCE_DIR "/tests/lsan.supp "
         "timeout 120 mpirun --allow-run-as-root --oversubscribe "
         "--mca btl_vader_single_copy_mechanism none -np " + std::to_string(np) + " " MXQAT_BINARY " ";
}

#define SKIP_WITHOUT_MPI()                                                                        \
  do {                                                                                            \
    if (!dist_built_with_mpi()) GTEST_SKIP() << "built without MPI (MXQAT_MPI=OFF)";              \
    if (sh("command -v mpirun").code != 0)                                                        \
      GTEST_SKIP() << "mpirun not found: scripts/install_deps.sh --mpi installs OpenMPI";          \
  } while (0)

void expect_same_state(const std::string& pa, const std::string& pb) {
  const Checkpoint a = load_checkpoint(pa), b = load_checkpoint(pb);
  ASSERT_EQ(a.step, b.step) << pb;
  ASSERT_EQ(a.params.size(), b.params.size());
  for (size_t i = 0; i < a.params.size(); ++i)
    EXPECT_TRUE(a.params[i].second.same_bits(b.params[i].second)) << pb << ": " << a.params[i].first;
  ASSERT_EQ(a.optimizer_state.size(), b.optimizer_state.size());
  for (size_t i = 0; i < a.optimizer_state.size(); ++i)
    EXPECT_TRUE(a.optimizer_state[i].second.same_bits(b.optimizer_state[i].second))
        << pb << ": " << a.optimizer_state[i].first;
}

std::string write_recipe(const fs::path& dir, const std::string& text) {
  const fs::path p = dir / "recipe.yaml";
  std::ofstream(p) << text;
  return p.string();
}

TEST(DistMpi, FashionMlpSameBitsOnOneTwoThreeProcesses) {
  SKIP_WITHOUT_MPI();
  fs::path d = fresh_dir("dp_mlp");
  const std::string recipe = write_recipe(d, kMlp), set = " --set train.micro_batches=6";
  const Shell serial = sh("OMP_NUM_THREADS=2 " MXQAT_BINARY " train " + recipe + set + " --out " + (d / "serial").string());
  ASSERT_EQ(serial.code, 0) << serial.out;
  for (int np : {1, 2, 3}) {
    const std::string out = (d / ("np" + std::to_string(np))).string();
    const Shell s = sh(mpirun(np) + "train " + recipe + set + " --out " + out);
    ASSERT_EQ(s.code, 0) << s.out;
    expect_same_state((d / "serial/checkpoint.h5").string(), out + "/checkpoint.h5");
    EXPECT_EQ(read_file(out + "/summary.json").find("\"wall_s\""), read_file((d / "serial/summary.json").string()).find("\"wall_s\""));
  }
  // more processes than micro-batches: a clear error, no hang
  const Shell bad = sh(mpirun(3) + "train " + recipe + " --set train.micro_batches=2 --out " + (d / "bad").string());
  EXPECT_NE(bad.code, 0);
  EXPECT_NE(bad.out.find("3 processes but 2 micro-batches"), std::string::npos) << bad.out;
  fs::remove_all(d);
}

// A small corpus in dir/{train,val,test}.txt.
std::string tiny_corpus(const fs::path& d) {
  const std::string verse = "And God said, Let there be light: and there was light.\n";
  for (auto [name, copies] : {std::pair<const char*, int>{"train", 40}, {"val", 3}, {"test", 3}}) {
    std::ofstream f(d / (std::string(name) + ".txt"), std::ios::binary);
    for (int i = 0; i < copies; ++i) f << verse;
  }
  return d.string();
}

// A tiny gpt recipe in d/recipe.yaml on tiny_corpus(d/corpus): name, seed, data and model, then `rest`.
std::string tiny_gpt_recipe(const fs::path& d, const std::string& name, const std::string& rest) {
  fs::create_directories(d / "corpus");
  return write_recipe(d, "name: " + name + "\nseed: 3\ndata: {dataset: text, dir: " + tiny_corpus(d / "corpus") +
      ", batch_size: 8}\nmodel: {type: gpt, layers: 1, d_model: 16, heads: 2, context: 12, mlp_hidden: 24}\n" + rest);
}

// (stochastic rounding of the output gradients included: its draws key on the global micro-batch)
TEST(DistMpi, GptQatSameBitsOnOneToFourProcessesAndResumeWithAnotherCount) {
  SKIP_WITHOUT_MPI();
  fs::path d = fresh_dir("dp_gpt");
  const std::string recipe = tiny_gpt_recipe(d, "dpgpt",
      "train: {steps: 8, micro_batches: 4, optimizer: {type: adamw, lr: 3.0e-3}, eval_every: 4, log_every: 4}\n"
      "quant: {weight: mxfp4, input: mxfp8_e4m3, grad_output: mxfp4, grad_rounding: stochastic,\n"
      "        schedule: [{until: 0.5, format: mxfp8_e4m3}, {until: 1.0, format: mxfp4}]}\n"
      "qat: {steps: 8, micro_batches: 4, optimizer: {type: adamw, lr: 1.0e-3}, monitor_every: 4, eval_every: 4,\n"
      "      log_every: 2, distill: {weight: 0.5, temperature: 2.0}}\n");
  const std::string base = (d / "base").string();
  const Shell b = sh(mpirun(2) + "train " + recipe + " --out " + base);
  ASSERT_EQ(b.code, 0) << b.out;
  const Shell bs = sh(MXQAT_BINARY " train " + recipe + " --out " + (d / "base1").string());
  ASSERT_EQ(bs.code, 0) << bs.out;
  expect_same_state((d / "base1/checkpoint.h5").string(), base + "/checkpoint.h5");
  const std::string from = " --from " + base + "/checkpoint.h5";
  const Shell serial = sh(MXQAT_BINARY " qat " + recipe + from + " --out " + (d / "serial").string());
  ASSERT_EQ(serial.code, 0) << serial.out;
  for (int np : {1, 2, 3, 4}) {
    const std::string out = (d / ("np" + std::to_string(np))).string();
    const Shell s = sh(mpirun(np) + "qat " + recipe + from + " --out " + out);
    ASSERT_EQ(s.code, 0) << s.out;
    expect_same_state((d / "serial/checkpoint.h5").string(), out + "/checkpoint.h5");
    // rank 0's telemetry (micro-batch 0's inputs) and metrics are the same for any count
    EXPECT_EQ(read_file(out + "/metrics.jsonl").size(), read_file((d / "serial/metrics.jsonl").string()).size());
  }
  // stopped at step 3 on 2 processes, resumed on 3: the uninterrupted run's bits
  const std::string res = (d / "resumed").string();
  const Shell s1 = sh(mpirun(2) + "qat " + recipe + from + " --out " + res + " --stop-at 3");
  ASSERT_EQ(s1.code, 0) << s1.out;
  EXPECT_EQ(load_checkpoint(res + "/checkpoint.h5").step, 3);
  const Shell s2 = sh(mpirun(3) + "qat " + recipe + from + " --out " + res + " --resume");
  ASSERT_EQ(s2.code, 0) << s2.out;
  expect_same_state((d / "serial/checkpoint.h5").string(), res + "/checkpoint.h5");
  fs::remove_all(d);
}

// The files of a ptq output directory: name -> contents, summary.json without its wall time (and
// without the directory lock, which holds a process id; folders left out).
std::map<std::string, std::string> ptq_files(const fs::path& dir) {
  std::map<std::string, std::string> out;
  for (const auto& e : fs::directory_iterator(dir)) {
    if (!e.is_regular_file() || e.path().filename() == ".mxqat.lock") continue;
    std::string text = read_file(e.path().string());
    if (e.path().filename() == "summary.json") text = text.substr(0, text.find("\"wall_s\""));
    out[e.path().filename().string()] = text;
  }
  return out;
}

const char* kTinyPtq =
    "train: {steps: 6, optimizer: {type: adamw, lr: 3.0e-3}, eval_every: 6, log_every: 6}\n"
    "quant: {weight: mxfp4, input: mxfp8_e4m3}\n"
    "ptq: {methods: [rtn, gptq, awq+gptq, smoothquant+rtn], calib_samples: 160, observer: percentile,\n"
    "      save_models: true}\n"
    "compare: {formats: [mxfp4]}\n";

// `mxqat ptq` on 1, 2 and 3 processes writes the serial run's files byte for byte: round to
// nearest, gptq (sequential Hessians), awq+gptq and smoothquant+rtn (the smoothing groups' inputs),
// the observers' activation ranges in the summary, and the models ptq.save_models writes for the
// rtn methods (rank 0 alone). 5 calibration batches of 32 windows: uneven rounds on 2 and 3
// processes. A row removed and redone on 3 processes (the others read from rank 0 on resume)
// gives the same files again.
TEST(DistMpi, PtqSameFilesOnOneTwoThreeProcesses) {
  SKIP_WITHOUT_MPI();
  fs::path d = fresh_dir("dp_ptq");
  const std::string recipe = tiny_gpt_recipe(d, "dpptq", kTinyPtq);
  const std::string base = (d / "base").string();
  const Shell b = sh(MXQAT_BINARY " train " + recipe + " --out " + base);
  ASSERT_EQ(b.code, 0) << b.out;
  const std::string from = " --from " + base + "/checkpoint.h5";
  const Shell serial = sh("OMP_NUM_THREADS=2 " MXQAT_BINARY " ptq " + recipe + from + " --out " + (d / "serial").string());
  ASSERT_EQ(serial.code, 0) << serial.out;
  const auto want = ptq_files(d / "serial");
  ASSERT_EQ(want.size(), 5u);  // four rows and the summary
  for (int np : {1, 2, 3}) {
    const fs::path out = d / ("np" + std::to_string(np));
    const Shell s = sh(mpirun(np) + "ptq " + recipe + from + " --out " + out.string());
    ASSERT_EQ(s.code, 0) << s.out;
    EXPECT_EQ(ptq_files(out), want) << "np " << np;
    for (const char* m : {"mxfp4_rtn.h5", "mxfp4_smoothquant+rtn.h5"})  // ptq.save_models: rank 0 wrote them
      expect_same_state((d / "serial/models" / m).string(), (out / "models" / m).string());
    const std::string done_line = "-> " + out.string() + "/summary.json";  // rank 0 alone prints it
    EXPECT_NE(s.out.find(done_line), std::string::npos) << s.out;
    EXPECT_EQ(s.out.find(done_line), s.out.rfind(done_line)) << s.out;
  }
  fs::remove(d / "np2/mxfp4_gptq.json");
  fs::remove(d / "np2/summary.json");
  const Shell again = sh(mpirun(3) + "ptq " + recipe + from + " --out " + (d / "np2").string());
  ASSERT_EQ(again.code, 0) << again.out;
  EXPECT_EQ(ptq_files(d / "np2"), want);
  fs::remove_all(d);
}

// `mxqat run` on 3 processes: the same baseline, PTQ files and QAT checkpoints as on one, and
// rank 0's export/verify/report complete the run directory.
TEST(DistMpi, RunPipelineOnThreeProcessesMatchesOne) {
  SKIP_WITHOUT_MPI();
  fs::path d = fresh_dir("dp_run");
  const std::string recipe = write_recipe(d, R"(name: dprun
seed: 11
data: {dataset: fashion_mnist, batch_size: 24, val_size: 120, train_limit: 480, test_limit: 120}
model: {type: mlp, hidden: [16], activation: relu}
train: {steps: 10, micro_batches: 3, optimizer: {type: adamw, lr: 3.0e-3}, log_every: 5}
quant: {weight: mxfp4, input: mxfp4}
qat: {steps: 6, micro_batches: 3, optimizer: {type: adamw, lr: 1.0e-3}, log_every: 3, monitor_every: 3}
ptq: {methods: [rtn, gptq], calib_samples: 300}
compare: {formats: [mxfp4], qat_progressive: false}
)");
  const Shell one = sh(MXQAT_BINARY " run " + recipe + " --out " + (d / "one").string());
  ASSERT_EQ(one.code, 0) << one.out;
  const Shell three = sh(mpirun(3) + "run " + recipe + " --out " + (d / "three").string());
  ASSERT_EQ(three.code, 0) << three.out;
  expect_same_state((d / "one/baseline/checkpoint.h5").string(), (d / "three/baseline/checkpoint.h5").string());
  int variants = 0;
  for (const auto& e : fs::directory_iterator(d / "one/qat"))
    if (e.is_directory()) {
      ++variants;
      expect_same_state((e.path() / "checkpoint.h5").string(),
                        (d / "three/qat" / e.path().filename() / "checkpoint.h5").string());
    }
  EXPECT_GE(variants, 1);
  std::string aligned = read_file((d / "one/export/alignment.json").string());  // paths aside
  for (size_t at; (at = aligned.find("/one/")) != std::string::npos;) aligned.replace(at, 5, "/three/");
  EXPECT_EQ(aligned, read_file((d / "three/export/alignment.json").string()));
  // ptq ran on the 3 processes (3 calibration batches): rank 0's files are the serial ones
  auto ptq_one = ptq_files(d / "one/ptq"), ptq_three = ptq_files(d / "three/ptq");
  for (auto& [name, text] : ptq_one)
    for (size_t at; (at = text.find("/one/")) != std::string::npos;) text.replace(at, 5, "/three/");
  EXPECT_EQ(ptq_one, ptq_three);
  EXPECT_EQ(ptq_three.size(), 4u);  // recipe.yaml, two rows, the summary
  EXPECT_TRUE(fs::exists(d / "three/report/report.md"));
  fs::remove_all(d);
}

TEST(DistMpi, AKilledRankStopsTheJobNamingTheLastCheckpoint) {
  SKIP_WITHOUT_MPI();
  fs::path d = fresh_dir("dp_kill");
  const std::string recipe = write_recipe(d, kMlp);
  // A long run that checkpoints every 5 steps; once the first checkpoint exists the newest process
  // whose command line names this test's own recipe (a rank) is killed.
  const std::string out = (d / "run").string();
  const std::string cmd =
      "(" + mpirun(2) + "train " + recipe + " --set train.steps=100000 --set train.micro_batches=2 "
      "--set train.checkpoint_every=5 --set train.eval_every=100000 --out " + out + " & p=$!; "
      "for i in $(seq 200); do [ -f " + out + "/checkpoint.h5 ] && break; sleep 0.05; done; "
      "sleep 0.2; pkill -9 -f -n 'mxqat train " + recipe + "'; wait $p)";
  const auto t0 = std::chrono::steady_clock::now();
  const Shell s = sh(cmd);
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  EXPECT_NE(s.code, 0) << s.out;
  EXPECT_LT(secs, 60.0) << s.out;  // no hang (the timeout in mpirun() would stop it at 120 s)
  EXPECT_NE(s.out.find("stopping because a peer failed"), std::string::npos) << s.out;
  EXPECT_NE(s.out.find("last checkpoint " + out + "/checkpoint.h5 at step"), std::string::npos) << s.out;
  fs::remove_all(d);
}

}  // namespace
}  // namespace mxqat::trainers
