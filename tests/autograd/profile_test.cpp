// The phase profiler (autograd/profile.h): off, it records nothing; on, every op's forward and
// backward gets a lap of its own ("fwd <op>", "bwd <op>"), fan-in sums are charged to "bwd grad
// accumulate", and a caller's own laps land under their labels. It never changes a result.
#include <gtest/gtest.h>

#include <algorithm>
#include <string>
#include <vector>

#include "autograd/ops.h"
#include "autograd/profile.h"

namespace mxqat::autograd {
namespace {

const profile::Entry* find(const std::vector<profile::Entry>& entries, const std::string& label) {
  auto it = std::find_if(entries.begin(), entries.end(), [&](const profile::Entry& e) { return e.label == label; });
  return it == entries.end() ? nullptr : &*it;
}

// y = sum((x W^T) * x') with x used twice, so its gradient is a sum of two.
Tensor step(Var& x, Var& w) {
  Var h = linear(x, w, Var());
  Var y = sum(mul(h, x));
  y.backward();
  profile::lap("caller phase");
  return x.grad();
}

TEST(Profile, LapsEveryOpForwardAndBackwardOnlyWhenOn) {
  Var x(Tensor(Shape{8, 8}, 0.5f), true), w(Tensor(Shape{8, 8}, 0.25f), true);
  profile::start();
  profile::stop();  // a cleared table, the profiler off
  const Tensor off = step(x, w);
  EXPECT_TRUE(profile::entries().empty());

  x.zero_grad();
  w.zero_grad();
  profile::start();
  const Tensor on = step(x, w);
  profile::stop();
  EXPECT_TRUE(on.same_bits(off));
  const std::vector<profile::Entry> e = profile::entries();
  for (const char* label : {"fwd linear", "fwd mul", "fwd sum", "bwd engine", "bwd sum", "bwd mul",
                            "bwd linear dX", "bwd linear dW", "bwd grad accumulate", "caller phase"}) {
    const profile::Entry* p = find(e, label);
    ASSERT_NE(p, nullptr) << "no lap for " << label;
    EXPECT_EQ(p->count, 1) << label;
    EXPECT_GE(p->seconds, 0.0) << label;
    EXPECT_GE(p->process_cpu, 0.0) << label;
  }
  EXPECT_EQ(find(e, "fwd linear"), &e.front());  // first seen, first listed

  // stop() keeps the table; start() clears it
  profile::lap("after stop");
  EXPECT_EQ(find(profile::entries(), "after stop"), nullptr);
  profile::start();
  EXPECT_TRUE(profile::entries().empty());
  profile::stop();
}

}  // namespace
}  // namespace mxqat::autograd
