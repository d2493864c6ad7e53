// Smoothing of a model before its weights are quantized (the smoothquant+ and awq+ PTQ methods):
// where the per-channel scale of each group of GEMMs is folded, and the pass that measures,
// chooses and folds it. The math (scales, AWQ's search) is quant/ptq/smooth.h.
//
// Which GEMMs get smoothing, and why (the llama-style gpt; a scale s must fold into an op that is
// linear per channel between the producer of the channels and the GEMMs reading them):
//   blocks.i.attn_norm -> attn.q, attn.k, attn.v   the RMSNorm gain g_j becomes g_j / s_j
//   blocks.i.attn.v    -> attn.o                   v's output rows / s_j: attention is a convex
//                                                  combination of value rows, per channel, so o's
//                                                  input channel j is divided by s_j too (grouped
//                                                  query attention: every query head reading kv
//                                                  head h shares its s)
//   blocks.i.mlp_norm  -> mlp.gate, mlp.up         the RMSNorm gain
//   blocks.i.mlp.up    -> mlp.down                 up's output rows / s_j: down reads
//                                                  silu(gate) * up, linear in up per channel
//   norm               -> head                     the final RMSNorm gain
// Not smoothed: nothing else feeds a GEMM. gate cannot carry down's scale (silu is not linear),
// and q/k carry rotary embeddings (a rotation mixes channel pairs), so they produce no channels
// that a later GEMM reads directly. Other model types have no such fold points here: awq and
// smoothquant refuse them by name.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "layers/module.h"
#include "quant/policy/plan.h"
#include "trainers/recipe/recipe.h"

namespace mxqat::trainers {

struct SmoothGroup {
  std::string source;               // parameter divided by s: a norm gain [C] or a weight [C, in]
  bool source_rows = false;         // true: the rows of a weight, false: a gain vector
  std::vector<std::string> layers;  // the GEMM layers that read the C channels
  std::vector<int64_t> channel_of;  // the layers' input channel k -> source channel (size K)
};

// The groups of `model` in forward order; refuses a model other than the gpt, by name.
std::vector<SmoothGroup> smoothing_groups(const layers::Module& model, const std::string& method);

// What the pass chose for one group (written into the PTQ row).
struct SmoothRecord {
  std::string group;     // the source parameter
  double alpha = 0;      // smoothquant: the recipe's, or the searched one (NaN: no smoothing won); awq: the searched one
  double error = 0;      // searched (awq, smoothquant_grid > 0): the group's quantized output error with s; else 0
  double error_identity = 0;  // searched: the same without smoothing
};

// Smooths `model` (its current FP32 weights) in place for `smoothing` ("smoothquant" | "awq"):
// per group in forward order, the group's input on the calibration batches (every GEMM of the
// model at full precision meanwhile; the specs of `plan` are restored after), the scales, and
// the fold. The codecs of the group's GEMMs (from `plan`) score AWQ's candidates. A group none
// of whose GEMMs quantizes anything is left alone.
std::vector<SmoothRecord> smooth_model(layers::Module& model, quant::QuantPlan& plan,
                                       const std::vector<autograd::Tensor>& calib, const std::string& smoothing,
                                       const PtqCfg& cfg);

}  // namespace mxqat::trainers
