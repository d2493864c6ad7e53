// A phase profiler for training steps: wall time per op (forward and backward) and per named
// phase, on the calling thread. Off by default and then free (one relaxed load per op); the
// benchmarks switch it on (bench_gpt_step with MXQAT_BENCH_PROFILE=1) to find what does not scale
// with threads. It measures, it changes no result.
//
// Model: a lap clock. lap(label) charges the wall time since the previous lap (or start()) to
// `label` and restarts the clock. make_node laps "fwd <op>" (the time since the previous op is
// that op's forward: ops run one after another), the engine laps "bwd <op>" after each closure
// and "bwd engine" before the first; callers lap their own phases ("optimizer", ...).
#pragma once
#include <atomic>
#include <cstdint>
#include <string>
#include <vector>

namespace mxqat::autograd::profile {

namespace detail {
extern std::atomic<bool> g_on;
void lap_slow(const char* phase, const char* name);
}  // namespace detail

inline bool on() { return detail::g_on.load(std::memory_order_relaxed); }

// Charges the time since the previous lap to "phase name" (name may be null); nothing when off.
inline void lap(const char* phase, const char* name = nullptr) {
  if (on()) detail::lap_slow(phase, name);
}

// One label's totals. CPU times tell a serial phase from a parallel one even on a loaded
// machine: a phase that ran on the calling thread alone has process_cpu == thread_cpu.
struct Entry {
  std::string label;
  double seconds = 0;      // wall
  double process_cpu = 0;  // CPU seconds of every thread of the process
  double thread_cpu = 0;   // CPU seconds of the calling thread
  int64_t count = 0;       // laps charged to it
};

// Switches the profiler on (for every thread; each thread keeps its own table) and clears the
// calling thread's table and clock.
void start();
// Switches it off; the tables stay readable.
void stop();
// Restarts the calling thread's clock without charging anything (e.g. at the top of a step).
void reset_clock();
// The calling thread's table, in the order the labels first appeared.
std::vector<Entry> entries();

}  // namespace mxqat::autograd::profile
