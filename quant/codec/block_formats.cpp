// The block-codec table (spec §4-§6, names of §9): one row per codec. A new codec is one row
// here (its element and scale formats are rows of formats.cpp); tests/quant loops over it.
#include "quant/codec/block_formats.h"

#include "autograd/error.h"

namespace mxqat::quant {
namespace {

using B = BlockScheme;

// clang-format off
const std::vector<BlockFormat>& table() {
  static const std::vector<BlockFormat> rows = {
//  name          scheme       element      scale    block bits
  { "mxfp8_e4m3", B::kMx,      "fp8_e4m3",  "e8m0",  32,   8 },
  { "mxfp8_e5m2", B::kMx,      "fp8_e5m2",  "e8m0",  32,   8 },
  { "mxfp6_e2m3", B::kMx,      "fp6_e2m3",  "e8m0",  32,   6 },
  { "mxfp6_e3m2", B::kMx,      "fp6_e3m2",  "e8m0",  32,   6 },
  { "mxfp4",      B::kMx,      "fp4_e2m1",  "e8m0",  32,   4 },
  { "mxint8",     B::kMx,      "mxint8",    "e8m0",  32,   8 },
  { "nvfp4",      B::kNvfp4,   "fp4_e2m1",  "ue4m3", 16,   4 },
  { "int8_sym",   B::kIntSym,  nullptr,     nullptr,  0,   8 },
  { "int4_sym",   B::kIntSym,  nullptr,     nullptr,  0,   4 },
  { "int8_asym",  B::kIntAsym, nullptr,     nullptr,  0,   8 },
  { "int4_asym",  B::kIntAsym, nullptr,     nullptr,  0,   4 },
  };
  return rows;  // function-local: safe to use during other files' static initialisation
}
// clang-format on

}  // namespace

const std::vector<BlockFormat>& block_formats() { return table(); }

const BlockFormat* find_block_format(const std::string& name) {
  for (const BlockFormat& b : table())
    if (b.name == name) return &b;
  return nullptr;
}

const char* scale_rule_name(ScaleRule r) { return r == ScaleRule::kFloor ? "floor" : "rceil"; }

ScaleRule parse_scale_rule(const std::string& name) {
  if (name == "floor") return ScaleRule::kFloor;
  if (name == "rceil") return ScaleRule::kRceil;
  MXQAT_FAIL("unknown scale rule \"", name, "\"; known: floor, rceil (spec §4.2, §4.3)");
  __builtin_unreachable();  // MXQAT_FAIL throws
}

}  // namespace mxqat::quant
