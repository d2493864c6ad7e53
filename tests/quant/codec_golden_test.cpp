// Golden cross-check of the element conversions against independent references (ml_dtypes,
// numpy, PyTorch: scripts/gen_codec_golden.py wrote tests/golden/codec_<format>.csv). Loops
// over the format table: a new row without its golden file fails here.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>

#include "quant/codec/formats.h"

namespace mxqat::quant {
namespace {

TEST(CodecGolden, ElementConversionsMatchIndependentReferences) {
  int64_t compared = 0, differed = 0;
  for (const ElementFormat& f : element_formats()) {
    const std::string path = std::string(MXQAT_SOURCE_DIR) + "/tests/golden/codec_" + f.name + ".csv";
    std::ifstream in(path);
    ASSERT_TRUE(in) << "missing golden file " << path << "; generate it with scripts/gen_codec_golden.py";
    int64_t n_dec = 0, n_enc = 0, bad = 0;
    std::string line;
    while (std::getline(in, line)) {
      if (line.empty() || line[0] == '#') continue;
      std::istringstream ls(line);
      std::string kind, a, b;
      ASSERT_TRUE(std::getline(ls, kind, ',') && std::getline(ls, a, ',') && std::getline(ls, b)) << line;
      const auto ua = static_cast<uint32_t>(std::stoul(a, nullptr, 16));
      const auto ub = static_cast<uint32_t>(std::stoul(b, nullptr, 16));
      if (kind == "dec") {
        ++n_dec;
        const float y = decode_element(f, ua);
        const bool ok = std::isnan(u2f(ub)) ? f2u(y) == kCanonicalNan : f2u(y) == ub;
        if (!ok) ++bad;
        EXPECT_TRUE(ok) << f.name << " decode code 0x" << std::hex << ua << " -> " << f2u(y) << ", golden " << ub;
      } else {
        ASSERT_EQ(kind, "enc") << line;
        ++n_enc;
        const uint32_t code = encode_element(f, u2f(ua));
        if (code != ub) ++bad;
        EXPECT_EQ(code, ub) << f.name << " encode of float bits 0x" << std::hex << ua << " (" << u2f(ua) << ")";
      }
    }
    EXPECT_EQ(n_dec, int64_t(1) << f.bits) << f.name << ": every code must have a dec line";
    EXPECT_GT(n_enc, 0) << f.name;
    compared += n_dec + n_enc;
    differed += bad;
    std::printf("[ golden   ] %-9s %5lld decodes, %5lld encodes, %lld differ\n", f.name,
                static_cast<long long>(n_dec), static_cast<long long>(n_enc), static_cast<long long>(bad));
  }
  std::printf("[ golden   ] total %lld values compared, %lld differed\n", static_cast<long long>(compared),
              static_cast<long long>(differed));
  RecordProperty("golden_compared", static_cast<int>(compared));
  RecordProperty("golden_differed", static_cast<int>(differed));
}

}  // namespace
}  // namespace mxqat::quant
