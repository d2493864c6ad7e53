// Data-parallel training (trainers/dist/): the fixed reduction tree against a serial reference
// for every process count (ranks simulated by threads), micro-batches against the whole batch,
// dropout masks of a micro-batch, and under mpirun (when this build has MPI and mpirun is on the
// PATH): bitwise equal checkpoints for -np 1, 2, 3 (4) on a Fashion MLP and a tiny gpt QAT run,
// a resume with another process count, and a killed rank that stops the job.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstring>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <random>
#include <thread>

#include "autograd/ops.h"
#include "layers/basic.h"
#include "tests/test_util.h"
#include "trainers/dist/dist.h"
#include "trainers/dist/tree.h"
#include "trainers/io/ckpt.h"
#include "trainers/stages/train_stage.h"

namespace mxqat::trainers {
namespace {

namespace fs = std::filesystem;
using mxqat::testing::fresh_dir;

// ---- the tree, with ranks simulated by threads -------------------------------------------------

// What the threads share: one allgatherv at a time, a generation counter as the barrier.
struct Exchange {
  std::mutex mu;
  std::condition_variable cv;
  int n = 0, arrived = 0, generation = 0;
  std::vector<const void*> shares;
};

class ThreadDist final : public Dist {
 public:
  ThreadDist(Exchange& x, int rank) : x_(x), rank_(rank) {}
  int rank() const override { return rank_; }
  int size() const override { return x_.n; }
  void allgatherv(const void* mine, void* all, const std::vector<size_t>& bytes) override {
    std::unique_lock<std::mutex> lock(x_.mu);
    x_.shares[size_t(rank_)] = mine;
    arrive(lock);
    auto* out = static_cast<char*>(all);
    for (int r = 0; r < x_.n; ++r) {  // every share stays alive until the second barrier below
      std::memcpy(out, x_.shares[size_t(r)], bytes[size_t(r)]);
      out += bytes[size_t(r)];
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
                                          std::vector<std::vector<int64_t>>* calls = nullptr) {
  const int64_t m = static_cast<int64_t>(leaves.size());
  const size_t len = leaves[0].size();
  Exchange x;
  x.n = n;
  x.shares.resize(size_t(n));
  std::vector<std::vector<float>> out(static_cast<size_t>(n));
  std::vector<std::vector<int64_t>> seen(static_cast<size_t>(n));
  std::vector<std::thread> threads;
  for (int r = 0; r < n; ++r)
    threads.emplace_back([&, r] {
      ThreadDist d(x, r);
      out[size_t(r)] = tree_sum(m, len, [&](int64_t i, float* o) {
        seen[size_t(r)].push_back(i);
        std::copy(leaves[size_t(i)].begin(), leaves[size_t(i)].end(), o);
      }, d);
    });
  for (auto& t : threads) t.join();
  if (calls) *calls = seen;
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

// (stochastic rounding of the output gradients included: its draws key on the global micro-batch)
TEST(DistMpi, GptQatSameBitsOnOneToFourProcessesAndResumeWithAnotherCount) {
  SKIP_WITHOUT_MPI();
  fs::path d = fresh_dir("dp_gpt");
  fs::create_directories(d / "corpus");
  const std::string recipe = write_recipe(d, "name: dpgpt\nseed: 3\ndata: {dataset: text, dir: " +
      tiny_corpus(d / "corpus") + ", batch_size: 8}\n"
      "model: {type: gpt, layers: 1, d_model: 16, heads: 2, context: 12, mlp_hidden: 24}\n"
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

// `mxqat run` on 3 processes: the same baseline and QAT checkpoints as on one, and rank 0's
// ptq/export/verify/report complete the run directory.
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
ptq: {methods: [rtn], calib_samples: 32}
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
