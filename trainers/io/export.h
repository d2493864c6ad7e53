// Model exports: a QAT checkpoint's weights packed with their codecs (spec §9 groups), the
// float32 tensors the policy leaves unquantized, the model's recipe and resolved policy, and an
// alignment manifest (codec settings, SHA-256 of every stored array, SQNR vs the master weights,
// the verification result). What the inference runtime (infer.h) loads. Not training
// checkpoints (ckpt.h). Layout (h5dump / h5py):
//   /                       attrs mxqat_format="export", mxqat_export_version=1, mxqat_version
//   /recipe                 string   effective recipe YAML (builds the model)
//   /policy                 string   resolved quant policy (quant::ResolvedPolicy::to_text)
//   /manifest               string   JSON: tensors (codec, shape, bytes, hashes, sqnr_db),
//                                    activations (layer -> codec), verification (or null)
//   /index/tensors          string [P]  parameter names, model order
//   /tensors/<name>         a spec §9 group (GEMM view [N, K], blocks along K; attr
//                           parameter_shape holds the parameter's own shape) or a float32 dataset
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "autograd/tensor.h"
#include "quant/codec/codec.h"
#include "trainers/io/ckpt.h"

namespace mxqat::trainers {

inline constexpr int64_t kExportVersion = 1;

struct ExportTensor {
  std::string name;            // parameter name
  autograd::Shape shape;       // the parameter's shape
  bool quantized = false;
  quant::EncodedTensor packed;  // quantized: [N, K] GEMM view, K = numel / shape[0]
  autograd::Tensor value;      // not quantized: float32
  double sqnr_db = 0;          // quantized: vs the float32 master weight at export (NaN unknown)

  int64_t bytes() const;       // stored payload: codes + scales (+ zero points), or 4 per float
  autograd::Tensor decoded() const;  // the weight inference uses (decode, or the float32 value)
};

struct ExportActivation {
  std::string layer, codec;  // the GEMM layer's input-activation codec ("none" = float32)
};

struct ExportModel {
  std::string recipe_text, policy_text;
  std::string source;                // the checkpoint it came from
  int64_t step = 0;
  std::vector<ExportTensor> tensors;  // model order
  std::vector<ExportActivation> activations;
  std::string verification = "null";  // JSON object written by `mxqat verify`

  int64_t bytes() const;
  int64_t float32_bytes() const;  // the same parameters as float32
};

// From a QAT checkpoint (its policy in meta "policy"; final phase) or an FP32 checkpoint with an
// explicit policy text. Weights of GEMM layers with a weight codec are encoded with that codec.
ExportModel make_export(const Checkpoint& c, const std::string& source,
                        const std::string& policy_text);

void write_export(const std::string& path, const ExportModel& m);  // atomic
// Validates everything before returning: format and version, every tensor's spec §9 group
// (unknown codec / spec version rejected), the SHA-256 of every array against the manifest
// (a mismatch names the tensor and the array), the index against the stored tensors.
ExportModel read_export(const std::string& path);
bool is_export(const std::string& path);  // never throws
std::string read_export_manifest(const std::string& path);  // the /manifest JSON text, unchecked

}  // namespace mxqat::trainers
