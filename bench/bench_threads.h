// Shared by the benchmarks that time several OpenMP thread counts: the counts to run, and their
// registration at each.
#pragma once
#include <benchmark/benchmark.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <utility>
#include <vector>

namespace mxqat::bench {

// 1 and 2, or the comma-separated list in MXQAT_BENCH_THREADS (e.g. 1,4,16 on a 16-core machine).
inline std::vector<int64_t> thread_counts() {
  const char* env = std::getenv("MXQAT_BENCH_THREADS");
  const std::string list = env && *env ? env : "1,2";
  std::vector<int64_t> out;
  for (size_t pos = 0; pos < list.size();) {
    const size_t comma = std::min(list.find(',', pos), list.size());
    out.push_back(std::max(1, std::atoi(list.substr(pos, comma - pos).c_str())));
    pos = comma + 1;
  }
  return out;
}

// Registers `name` at each thread count (the benchmark's Arg 0), in milliseconds of wall time.
template <class Fn>
benchmark::internal::Benchmark* register_per_thread_count(const std::string& name, Fn&& fn) {
  return benchmark::RegisterBenchmark(name.c_str(), std::forward<Fn>(fn))
      ->ArgsProduct({thread_counts()})
      ->Unit(benchmark::kMillisecond)
      ->UseRealTime();
}

}  // namespace mxqat::bench
