// The phase profiler (profile.h): per-thread lap tables.
#include "autograd/profile.h"

#include <time.h>

#include <chrono>

namespace mxqat::autograd::profile {

namespace {
using Clock = std::chrono::steady_clock;

double cpu_seconds(clockid_t clock) {
  timespec ts{};
  clock_gettime(clock, &ts);
  return static_cast<double>(ts.tv_sec) + 1e-9 * static_cast<double>(ts.tv_nsec);
}

struct Stamp {
  Clock::time_point wall;
  double process_cpu, thread_cpu;
  static Stamp now() {
    return {Clock::now(), cpu_seconds(CLOCK_PROCESS_CPUTIME_ID), cpu_seconds(CLOCK_THREAD_CPUTIME_ID)};
  }
};

struct Table {
  std::vector<Entry> entries;
  Stamp last = Stamp::now();
};

Table& table() {
  thread_local Table t;
  return t;
}
}  // namespace

namespace detail {
std::atomic<bool> g_on{false};

void lap_slow(const char* phase, const char* name) {
  Table& t = table();
  const Stamp now = Stamp::now();
  std::string label = phase;
  if (name) label.append(" ").append(name);
  Entry* e = nullptr;
  for (Entry& x : t.entries)
    if (x.label == label) e = &x;
  if (!e) e = &t.entries.emplace_back(Entry{std::move(label), 0, 0, 0, 0});
  e->seconds += std::chrono::duration<double>(now.wall - t.last.wall).count();
  e->process_cpu += now.process_cpu - t.last.process_cpu;
  e->thread_cpu += now.thread_cpu - t.last.thread_cpu;
  ++e->count;
  t.last = Stamp::now();  // the bookkeeping above is charged to nobody
}
}  // namespace detail

void start() {
  table() = Table();
  detail::g_on.store(true, std::memory_order_relaxed);
}

void stop() { detail::g_on.store(false, std::memory_order_relaxed); }

void reset_clock() { table().last = Stamp::now(); }

std::vector<Entry> entries() { return table().entries; }

}  // namespace mxqat::autograd::profile
