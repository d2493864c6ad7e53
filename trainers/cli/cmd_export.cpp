// `mxqat export`, `verify`, `inspect` and `infer`: from a trained checkpoint to a packed export,
// the proof that it infers exactly like training, what is inside, and inference from it.
#include <omp.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <iostream>

#include "trainers/cli/cli_args.h"
#include "trainers/cli/commands.h"
#include "trainers/data/data.h"
#include "trainers/data/evaluate.h"
#include "trainers/interop/compressed_tensors.h"
#include "trainers/interop/gguf.h"
#include "trainers/data/task.h"
#include "quant/policy/policy.h"
#include "trainers/runtime/infer.h"
#include "trainers/stages/export_stage.h"
#include "trainers/util/json_read.h"
#include "trainers/util/json_write.h"

namespace mxqat::trainers {

namespace {
namespace fs = std::filesystem;

std::string fmt(const char* f, double v) {
  char b[64];
  std::snprintf(b, sizeof b, f, v);
  return b;
}

void inspect_export(const std::string& path) {
  const ExportModel m = read_export(path);
  std::printf("%s: mxqat export v%lld of %s (step %lld)\n", path.c_str(), (long long)kExportVersion,
              m.source.c_str(), (long long)m.step);
  std::printf("%-28s %-11s %-16s %10s %8s %9s\n", "tensor", "codec", "shape", "bytes", "bits/w", "SQNR dB");
  for (const auto& t : m.tensors) {
    const double n = double(autograd::numel_of(t.shape));
    std::printf("%-28s %-11s %-16s %10lld %8.3f %9s\n", t.name.c_str(),
                t.quantized ? t.packed.codec.c_str() : "float32", autograd::shape_str(t.shape).c_str(),
                (long long)t.bytes(), 8.0 * double(t.bytes()) / n,
                t.quantized ? (std::isnan(t.sqnr_db) ? "?" : fmt("%.2f", t.sqnr_db).c_str()) : "exact");
  }
  std::printf("total %lld bytes (float32: %lld bytes), compression %.2fx\n", (long long)m.bytes(),
              (long long)m.float32_bytes(), double(m.float32_bytes()) / double(m.bytes()));
  std::printf("input activations:");
  for (const auto& a : m.activations) std::printf(" %s=%s", a.layer.c_str(), a.codec.c_str());
  std::printf("\nverification: %s\n", m.verification.c_str());
}

void inspect_checkpoint(const std::string& path) {
  const Checkpoint c = load_checkpoint(path);
  std::printf("%s: mxqat training checkpoint at step %lld (float32 parameters)\n", path.c_str(),
              (long long)c.step);
  int64_t total = 0;
  for (const auto& [name, t] : c.params) {
    std::printf("%-28s %-11s %-16s %10lld\n", name.c_str(), "float32", autograd::shape_str(t.shape()).c_str(),
                (long long)t.size() * 4);
    total += t.size() * 4;
  }
  std::printf("total %lld bytes\n", (long long)total);
  if (c.meta.count("policy")) std::printf("quant policy (QAT checkpoint):\n%s\n", c.meta.at("policy").c_str());
}

// Inputs for `infer`: a split of the recipe's dataset, or a raw float32 file [N, features].
Dataset infer_inputs(const Args& a, const Recipe& r, int64_t features) {
  const std::string input = a.get_or("--input", "test");
  Dataset d;
  if (input == "test" || input == "val" || input == "train") {
    Splits s = load_fashion_mnist(r.data, static_cast<uint64_t>(r.seed));
    d = input == "test" ? std::move(s.test) : input == "val" ? std::move(s.val) : std::move(s.train);
  } else {
    std::error_code ec;
    const auto bytes = fs::file_size(input, ec);
    MXQAT_CHECK(!ec, "--input '", input, "': ", ec.message(), " (give test, val, train or a raw "
                "float32 file of N x ", features, " normalised features)");
    MXQAT_CHECK(bytes > 0 && bytes % (4 * features) == 0, "--input '", input, "' has ", bytes,
                " bytes, not a whole number of rows of ", features, " float32 features");
    const int64_t n = int64_t(bytes) / (4 * features);
    d.x = autograd::Tensor({n, features});
    const std::string raw = read_file(input);
    std::memcpy(d.x.data(), raw.data(), raw.size());
    d.y.assign(size_t(n), -1);
  }
  if (a.has("--limit")) {
    const int64_t n = std::min<int64_t>(d.size(), int_flag(a, "--limit", 0, 1));
    d.x = autograd::Tensor({n, features}, std::vector<float>(d.x.data(), d.x.data() + n * features));
    d.y.resize(size_t(n));
  }
  return d;
}
}  // namespace

int cmd_export(const std::vector<std::string>& argv) {
  Args a("export", argv, {{"--out", true}, {"--format", true}, {"--weights", true}, {"--dtype", true}},
         1, 1);
  MXQAT_CHECK(a.has("--out"), "mxqat export: --out PATH is required");
  const std::string format = a.get_or("--format", "h5"), out = *a.get("--out");
  const std::string src = a.positional()[0];
  MXQAT_CHECK(format == "h5" || format == "gguf" || format == "compressed-tensors",
              "mxqat export: --format '", format, "' is not known; use h5 (default), gguf or "
              "compressed-tensors");
  MXQAT_CHECK(!a.has("--weights") || format == "gguf", "mxqat export: --weights applies to "
              "--format gguf only");
  MXQAT_CHECK(!a.has("--dtype") || format == "compressed-tensors", "mxqat export: --dtype applies "
              "to --format compressed-tensors only");
  if (format == "h5") {
    const ExportModel m = export_checkpoint(src, out);
    std::cout << "exported " << m.tensors.size() << " tensors, " << m.bytes() << " bytes (float32 "
              << m.float32_bytes() << ") -> " << out << "\n";
    return 0;
  }
  // The other formats start from an HDF5 export (its packed codes are what they carry) or pack a
  // checkpoint in memory exactly as `--format h5` would.
  ExportModel m;
  if (is_export(src)) {
    m = read_export(src);
  } else {
    const std::string path = resolve_checkpoint(src);
    const Checkpoint c = load_checkpoint(path);
    m = make_export(c, path, export_policy(c, path));
  }
  MXQAT_CHECK(!quant::ResolvedPolicy::from_text(m.policy_text).rotation, "mxqat export: ", src,
              " was quantized under quant.rotation: hadamard; its weights are stored rotated and only "
              "mxqat's runtime rotates the inputs to match, so --format ", format, " would compute a "
              "different function: export it as h5, or quantize without rotation");
  if (format == "gguf") {
    fs::create_directories(fs::absolute(out).parent_path());
    const std::string w = a.get_or("--weights", "packed");
    MXQAT_CHECK(w == "packed" || w == "f32", "mxqat export: --weights '", w,
                "' is not known; use packed (MXFP4 weights as ggml MXFP4, default) or f32");
    const GgufSummary s = write_gguf(m, out, w == "f32" ? GgufWeights::kF32 : GgufWeights::kPacked);
    std::cout << "exported " << s.tensors << " tensors (" << s.mxfp4_tensors << " MXFP4), "
              << s.bytes << " bytes -> " << out << "\n";
    return 0;
  }
  const std::string dtype = a.get_or("--dtype", "f32");
  MXQAT_CHECK(dtype == "f32" || dtype == "bf16", "mxqat export: --dtype '", dtype,
              "' is not known; use f32 (default) or bf16 for the tensors left unquantized");
  const CompressedTensorsSummary s =
      write_compressed_tensors(m, out, dtype == "bf16" ? FloatDtype::kBF16 : FloatDtype::kF32);
  std::cout << "exported " << s.tensors << " tensors (" << s.quantized << " layers packed as "
            << s.format << "), " << s.bytes << " bytes -> " << out << "/{config.json,model.safetensors}\n";
  return 0;
}

int cmd_verify(const std::vector<std::string>& argv) {
  Args a("verify", argv,
         {{"--against", true}, {"--threads", true}, {"--limit", true}, {"--out", true},
          {"--record", false}},
         1, 1);
  apply_threads(a);
  VerifyOptions opt;
  opt.against = a.get_or("--against", "");
  opt.limit = int_flag(a, "--limit", 0, 1);
  opt.out = a.get_or("--out", "");
  opt.record = a.has("--record");
  const Verification v = verify_export(a.positional()[0], opt);
  std::cout << v.json << "\n";
  MXQAT_CHECK(v.bitwise_equal, "verify: the export's logits differ from the training model's "
              "fake-quant logits (", v.json, ") although the checkpoint is the one it was made "
              "from; this is a bug: please report it with the two files");
  return 0;
}

int cmd_inspect(const std::vector<std::string>& argv) {
  Args a("inspect", argv, {}, 1, 1);
  const std::string path = a.positional()[0];
  // One open decides, and its error (missing, not ours, truncated, damaged) is the message.
  const std::string format = mxqat_format_of(path);
  if (format == "export") inspect_export(path);
  else if (format == "checkpoint") inspect_checkpoint(path);
  else
    MXQAT_FAIL("'", path, "' was written by mxqat but is neither a checkpoint nor an export (",
               format.empty() ? "no mxqat_format attribute: a quantize output? read it with "
                                "'mxqat dequantize " + path + " --out RAW.f32'"
                              : "mxqat_format '" + format + "'", ")");
  return 0;
}

int cmd_infer(const std::vector<std::string>& argv) {
  Args a("infer", argv,
         {{"--input", true}, {"--limit", true}, {"--fast", false}, {"--out", true}, {"--threads", true}},
         1, 1);
  apply_threads(a);
  const std::string path = a.positional()[0];
  InferenceModel im = load_inference(read_export(path), path,
                                     a.has("--fast") ? InferPath::kFast : InferPath::kReference);
  const Recipe& r = im.recipe;
  const DataDims dims = data_dims(r);
  if (data_kind(r) == DataKind::kText) {  // a language model: test bits per byte / token
    const std::unique_ptr<Task> task = Task::load(r);
    const auto t0 = std::chrono::steady_clock::now();
    const double bpb = task->test_metric(*im.model);
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    std::cout << JsonObject().str("export", path).str("path", a.has("--fast") ? "fast" : "reference")
                     .num(task_metric(r).name, bpb).num("seconds", s).dump() << "\n";
    return 0;
  }
  const Dataset d = infer_inputs(a, r, dims.features);
  const auto t0 = std::chrono::steady_clock::now();
  const autograd::Tensor logits = predict(*im.model, d);
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::string csv = "index,predicted,label\n";
  int64_t correct = 0, labelled = 0;
  for (int64_t i = 0; i < d.size(); ++i) {
    const float* row = logits.data() + i * logits.cols();
    const int64_t pred = std::max_element(row, row + logits.cols()) - row;
    const int32_t y = d.y[size_t(i)];
    csv += std::to_string(i) + "," + std::to_string(pred) + "," + (y >= 0 ? std::to_string(y) : "") + "\n";
    if (y >= 0) ++labelled, correct += pred == y;
  }
  if (auto out = a.get("--out")) write_file_atomic(*out, csv);
  JsonObject o;
  o.str("export", path).str("path", a.has("--fast") ? "fast" : "reference").integer("samples", d.size())
      .integer("fast_layers", int64_t(im.fast.size())).num("seconds", s).num("samples_per_s", double(d.size()) / s);
  if (labelled > 0) o.num("accuracy", double(correct) / double(labelled));
  std::cout << o.dump() << "\n";
  return 0;
}

}  // namespace mxqat::trainers
