// Tests of quant/schedule: validation errors naming the phase, and the step -> phase arithmetic
// (checked against a direct statement of the definition for many totals).
#include <gtest/gtest.h>

#include <cmath>
#include <string>

#include "autograd/error.h"
#include "quant/schedule/schedule.h"
#include "tests/test_util.h"

namespace mxqat::quant {
namespace {

using mxqat::testing::error_of;
using mxqat::testing::expect_error;

Schedule progressive() {
  return Schedule({Phase::format(0.3, "mxfp8_e4m3"), Phase::format(0.6, "mxfp6_e2m3"),
                   Phase::format(1.0, "mxfp4")});
}


TEST(Schedule, ProgressivePhasesAtTheirSteps) {
  const Schedule s = progressive();
  EXPECT_EQ(s.active(0, 1000), 0);
  EXPECT_EQ(s.active(299, 1000), 0);
  EXPECT_EQ(s.active(300, 1000), 1);
  EXPECT_EQ(s.active(599, 1000), 1);
  EXPECT_EQ(s.active(600, 1000), 2);
  EXPECT_EQ(s.active(999, 1000), 2);
  EXPECT_EQ(s.active(5000, 1000), 2);  // past the end: stays in the last phase
  const auto ch = s.phase_changes(1000);
  ASSERT_EQ(ch.size(), 3u);
  EXPECT_EQ(ch[0].step, 0);
  EXPECT_EQ(ch[1].step, 300);
  EXPECT_EQ(ch[2].step, 600);
  EXPECT_EQ(ch[2].phase, 2);
  EXPECT_EQ(s.describe(), "mxfp8_e4m3 until 0.3, mxfp6_e2m3 until 0.6, mxfp4 until 1");
}

TEST(Schedule, ActiveAgreesWithPhaseChangesForEveryTotal) {
  const Schedule s({Phase::format(0.1, "mxfp8_e4m3"), Phase::format(0.35, "mxfp6_e3m2"),
                    Phase::format(0.5, "none"), Phase::format(1.0, "mxfp4")});
  for (int64_t total = 1; total <= 60; ++total) {
    const auto ch = s.phase_changes(total);
    ASSERT_FALSE(ch.empty());
    EXPECT_EQ(ch[0].step, 0);
    size_t c = 0;
    for (int64_t step = 0; step < total; ++step) {
      while (c + 1 < ch.size() && step >= ch[c + 1].step) ++c;
      EXPECT_EQ(s.active(step, total), ch[c].phase) << "total " << total << " step " << step;
      // The definition: the phase i whose end round(until_i * total) is the first beyond step.
      int expect = 3;
      for (int i = 0; i < 3; ++i)
        if (step < std::llround(s.phases()[i].until * total)) { expect = i; break; }
      EXPECT_EQ(s.active(step, total), expect);
    }
  }
}

TEST(Schedule, SinglePhaseIsDirectQat) {
  const Schedule s({Phase::format(1.0, "mxfp4")});
  for (int64_t step : {0, 1, 7, 9}) EXPECT_EQ(s.active(step, 10), 0);
  EXPECT_EQ(s.phase_changes(10).size(), 1u);
}

TEST(Schedule, AbsoluteSteps) {
  const Schedule s({Phase{100, true, "mxfp8_e4m3", ""}, Phase{250, true, "mxfp4", "mxfp8_e4m3"}});
  EXPECT_TRUE(s.absolute());
  EXPECT_EQ(s.active(99, 250), 0);
  EXPECT_EQ(s.active(100, 250), 1);
  EXPECT_EQ(s.phase_changes(250)[1].step, 100);
  expect_error([&] { s.active(0, 300); }, {"ends at step 250", "QAT runs 300 steps"});
  EXPECT_EQ(Schedule::describe(s.phases()[1]), "w=mxfp4 a=mxfp8_e4m3");
}

TEST(Schedule, ErrorsNameThePhase) {
  expect_error([] { Schedule({Phase::format(0.5, "mxfp8_e4m3"), Phase::format(0.4, "mxfp4"),
                              Phase::format(1.0, "mxfp4")}, "quant rule 1"); },
               {"quant rule 1", "phase 1", "overlap"});
  expect_error([] { Schedule({Phase::format(0.3, "mxfp8_e4m3"), Phase::format(0.9, "mxfp4")}); },
               {"last phase ends at 0.9", "until: 1.0"});
  expect_error([] { Schedule({Phase::format(1.0, "mxfp5")}); },
               {"unknown codec \"mxfp5\"", "phase 0", "mxfp4", "nvfp4"});
  expect_error([] { Schedule({Phase::format(0.5, "mxfp4"), Phase::format(1.5, "mxfp4")}); },
               {"phase 1", "(0, 1]"});
  expect_error([] { Schedule({Phase::format(0.5, "mxfp4"), Phase{10, true, "mxfp4", "mxfp4"}}); },
               {"phase 1", "one unit"});
  expect_error([] { Schedule({Phase{1.0, false, "", ""}}); }, {"phase 0", "names no codec"});
  expect_error([] { Schedule({Phase{10.5, true, "mxfp4", ""}}); }, {"whole number"});
  expect_error([] { progressive().active(0, 0); }, {"at least one"});
  expect_error([] { progressive().active(-1, 10); }, {"negative"});
}

}  // namespace
}  // namespace mxqat::quant
