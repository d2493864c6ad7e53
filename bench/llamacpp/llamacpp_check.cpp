// llamacpp_check: runs the GGUF files of an mxqat gpt export in a real llama.cpp (the prebuilt
// libraries of npm @node-llama-cpp/linux-x64, installed by scripts/install_deps.sh --llamacpp)
// and measures the three figures of the GGUF export:
//   1. the F32 GGUF's logits vs mxqat's forward with the same (decoded) weights in float32 and no
//      activation quantization, on test windows: max |a - b| / max |b| per window (the relative
//      error at the logits' scale), worst window;
//   2. the MXFP4 GGUF's test bits per byte in llama.cpp (its CPU backend quantizes activations to
//      Q8_0) vs mxqat's fast path on the export (packed weights, the export's activation codecs);
//   3. llama.cpp's own dequantization of each MXFP4 tensor of the GGUF (ggml's type traits
//      to_float) vs our decoded weights, bit for bit (ggml has no negative zero: our -0 codes
//      come back as +0; counted separately);
//   4. that llama.cpp tokenizes text into its bytes with the GGUF's byte vocabulary.
// Every window is a fresh sequence (positions 0..T-1), as mxqat's evaluation windows.
//   llamacpp_check --export MODEL.h5 --gguf-f32 F32.gguf --gguf-mxfp4 MXFP4.gguf
//                  [--windows N] [--threads N] [--max-rel 1e-4] [--max-bpb-diff 0.02] [--out R.json]
// Prints one JSON object; exits 1 when a figure misses its bar, 2 on an error.
#include <ggml-backend.h>
#include <ggml.h>
#include <gguf.h>
#include <llama.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <map>
#include <memory>

#include "autograd/var.h"
#include "trainers/cli/cli_args.h"
#include "trainers/io/export.h"
#include "trainers/runtime/infer.h"
#include "trainers/interop/gguf.h"
#include "trainers/util/json_read.h"
#include "trainers/model/model_factory.h"
#include "trainers/util/json_write.h"
#include "trainers/data/task.h"
#include "trainers/data/text_data.h"
#include "bench/llamacpp/llama_util.h"

namespace {

using namespace mxqat;
using namespace mxqat::trainers;

// One llama.cpp model + context sized for windows of T tokens, logits for every position.
class Llama {
 public:
  Llama(const std::string& path, int64_t T, int threads) {
    model_ = llamacpp::load_model(path);
    llama_context_params cp = llama_context_default_params();
    cp.n_ctx = uint32_t(T);
    cp.n_batch = cp.n_ubatch = uint32_t(T);
    cp.n_seq_max = 1;
    cp.n_threads = cp.n_threads_batch = threads;
    cp.type_k = cp.type_v = GGML_TYPE_F32;  // the default F16 cache would round k and v
    cp.flash_attn_type = LLAMA_FLASH_ATTN_TYPE_DISABLED;
    cp.no_perf = true;
    ctx_ = llama_init_from_model(model_, cp);
    MXQAT_CHECK(ctx_, "llama.cpp could not create a context for ", path);
    vocab_ = llama_vocab_n_tokens(llama_model_get_vocab(model_));
    batch_ = llama_batch_init(int32_t(T), 0, 1);
  }
  ~Llama() {
    llama_batch_free(batch_);
    llama_free(ctx_);
    llama_model_free(model_);
  }
  Llama(const Llama&) = delete;
  Llama& operator=(const Llama&) = delete;
  int32_t vocab() const { return vocab_; }

  // llama.cpp's own tokenization of `text` (no special tokens added).
  std::vector<int32_t> tokenize(const std::string& text) const {
    std::vector<llama_token> t(text.size() + 8);
    const int32_t n = llama_tokenize(llama_model_get_vocab(model_), text.data(), int32_t(text.size()),
                                     t.data(), int32_t(t.size()), false, false);
    MXQAT_CHECK(n >= 0, "llama_tokenize failed on '", text, "'");
    return std::vector<int32_t>(t.begin(), t.begin() + n);
  }

  // logits [T, vocab] of one window, from an empty cache.
  std::vector<float> logits(const float* tokens, int64_t T) {
    llama_memory_clear(llama_get_memory(ctx_), true);
    llamacpp::fill_batch(batch_, tokens, int32_t(T), 0, true);
    MXQAT_CHECK(llama_decode(ctx_, batch_) == 0, "llama_decode failed");
    std::vector<float> out(size_t(T * vocab_));
    for (int64_t t = 0; t < T; ++t)
      std::memcpy(out.data() + t * vocab_, llama_get_logits_ith(ctx_, int32_t(t)), size_t(vocab_) * 4);
    return out;
  }

 private:
  llama_model* model_ = nullptr;
  llama_context* ctx_ = nullptr;
  llama_batch batch_{};
  int32_t vocab_ = 0;
};

// Sum of -log softmax(logits)[y] (nats, in double) over T positions.
double nll(const float* logits, const int32_t* y, int64_t T, int64_t V) {
  double s = 0;
  for (int64_t t = 0; t < T; ++t) {
    const float* l = logits + t * V;
    const double mx = *std::max_element(l, l + V);
    double z = 0;
    for (int64_t v = 0; v < V; ++v) z += std::exp(double(l[v]) - mx);
    s += mx + std::log(z) - double(l[y[t]]);
  }
  return s;
}

// mxqat logits [T, V] of one window.
std::vector<float> mxqat_logits(layers::Module& m, const autograd::Tensor& x, int64_t w, int64_t T) {
  autograd::NoGradGuard ng;
  autograd::Tensor xw({1, T}, std::vector<float>(x.data() + w * T, x.data() + (w + 1) * T));
  const autograd::Tensor l = m.forward(autograd::Var(xw)).value();
  return std::vector<float>(l.data(), l.data() + l.size());
}

struct Dequant {
  int64_t tensors = 0, elements = 0, bit_equal = 0, neg_zero = 0, other = 0;
};

// ggml's to_float of every MXFP4 tensor in the GGUF vs the export's decoded weights.
Dequant compare_dequant(const std::string& gguf_path, const ExportModel& m) {
  ggml_context* gctx = nullptr;
  gguf_init_params p{false, &gctx};
  gguf_context* g = gguf_init_from_file(gguf_path.c_str(), p);
  MXQAT_CHECK(g && gctx, "gguf_init_from_file could not read ", gguf_path);
  const ggml_type_traits* tr = ggml_get_type_traits(GGML_TYPE_MXFP4);
  MXQAT_CHECK(tr && tr->to_float, "this ggml has no to_float for MXFP4");
  Dequant d;
  for (const auto& t : m.tensors) {
    ggml_tensor* gt = ggml_get_tensor(gctx, gguf_tensor_name(t.name).c_str());
    MXQAT_CHECK(gt, gguf_path, " lacks ", gguf_tensor_name(t.name));
    if (gt->type != GGML_TYPE_MXFP4) continue;
    const int64_t n = ggml_nelements(gt);
    std::vector<float> theirs(static_cast<size_t>(n));
    tr->to_float(gt->data, theirs.data(), n);
    const autograd::Tensor ours = t.decoded();
    MXQAT_CHECK(ours.size() == n, t.name, ": ", n, " elements in the GGUF, ", ours.size(), " ours");
    ++d.tensors;
    d.elements += n;
    for (int64_t i = 0; i < n; ++i) {
      uint32_t a, b;
      std::memcpy(&a, &theirs[size_t(i)], 4);
      std::memcpy(&b, ours.data() + i, 4);
      if (a == b) ++d.bit_equal;
      else if (a == 0u && b == 0x80000000u) ++d.neg_zero;
      else ++d.other;
    }
  }
  ggml_free(gctx);
  gguf_free(g);
  return d;
}

int run(const std::vector<std::string>& argv) {
  Args a("llamacpp_check", argv,
         {{"--export", true}, {"--gguf-f32", true}, {"--gguf-mxfp4", true}, {"--windows", true},
          {"--threads", true}, {"--max-rel", true}, {"--max-bpb-diff", true}, {"--out", true},
          {"--libdir", true}},
         0, 0);
  MXQAT_CHECK(a.has("--export") && a.has("--gguf-f32") && a.has("--gguf-mxfp4"),
              "llamacpp_check: --export MODEL.h5 --gguf-f32 F32.gguf --gguf-mxfp4 MXFP4.gguf are required");
  apply_threads(a);
  const int threads = int(int_flag(a, "--threads", 2, 1));
  const double max_rel = float_flag(a, "--max-rel", 1e-4), max_bpb = float_flag(a, "--max-bpb-diff", 0.02);
  const std::string export_path = *a.get("--export");

  llamacpp::start(a.get_or("--libdir", MXQAT_LLAMACPP_LIBDIR));

  const ExportModel m = read_export(export_path);
  const Recipe r = parse_recipe(m.recipe_text, export_path + ":/recipe");
  MXQAT_CHECK(r.data.dataset == "text", "llamacpp_check: ", export_path, " is not a language model");
  const TextData text = load_text(r.data, r.model.context, r.data.batch_size, uint64_t(r.seed));
  const int64_t T = text.context, total = text.windows(text.test);
  const int64_t W = std::min(total, int_flag(a, "--windows", total, 1));
  autograd::Tensor x;
  std::vector<int32_t> y;
  text_windows(text.test, T, 0, W, x, y);
  const DataDims dims = data_dims(r);

  // 1. F32: the decoded weights in float32, no activation quantization, vs the F32 GGUF.
  auto plain = build_model(r, dims.features, dims.classes);
  {
    std::map<std::string, const ExportTensor*> by_name;
    for (const auto& t : m.tensors) by_name[t.name] = &t;
    for (auto [name, v] : plain->named_parameters()) v.value() = by_name.at(name)->decoded();
    plain->train(false);
  }
  double worst_rel = 0, f32_nll_ours = 0, f32_nll_llama = 0;
  bool tokens_are_bytes = true;
  {
    Llama ll(*a.get("--gguf-f32"), T, threads);
    // The byte vocabulary: llama.cpp must tokenize text into its bytes (byte fallback), spaces,
    // newlines and non-ASCII UTF-8 included.
    const std::string probe = "And God said, Let there be light:\n\tcaf\xc3\xa9 \xe2\x80\x94 end";
    const std::vector<int32_t> ids = ll.tokenize(probe);
    tokens_are_bytes = ids.size() == probe.size();
    for (size_t i = 0; tokens_are_bytes && i < ids.size(); ++i)
      tokens_are_bytes = ids[i] == int32_t(static_cast<unsigned char>(probe[i]));
    for (int64_t w = 0; w < W; ++w) {
      const std::vector<float> ours = mxqat_logits(*plain, x, w, T), theirs = ll.logits(x.data() + w * T, T);
      MXQAT_CHECK(ours.size() == theirs.size(), "vocabulary: mxqat ", ours.size() / size_t(T),
                  ", llama.cpp ", ll.vocab());
      double scale = 0, diff = 0;
      for (size_t i = 0; i < ours.size(); ++i) {
        scale = std::max(scale, double(std::fabs(ours[i])));
        diff = std::max(diff, double(std::fabs(ours[i] - theirs[i])));
      }
      worst_rel = std::max(worst_rel, diff / scale);
      f32_nll_ours += nll(ours.data(), y.data() + w * T, T, ll.vocab());
      f32_nll_llama += nll(theirs.data(), y.data() + w * T, T, ll.vocab());
    }
  }
  // 2. MXFP4: bits per byte in llama.cpp vs mxqat's fast path on the same windows.
  double nll_llama = 0, nll_fast = 0;
  {
    InferenceModel fast = load_inference(m, export_path, InferPath::kFast);
    Llama ll(*a.get("--gguf-mxfp4"), T, threads);
    for (int64_t w = 0; w < W; ++w) {
      nll_fast += nll(mxqat_logits(*fast.model, x, w, T).data(), y.data() + w * T, T, ll.vocab());
      nll_llama += nll(ll.logits(x.data() + w * T, T).data(), y.data() + w * T, T, ll.vocab());
    }
  }
  const double n = double(W * T);
  const double bpb_llama = bits_per_byte(nll_llama / n), bpb_fast = bits_per_byte(nll_fast / n);
  // 3. llama.cpp's dequantized MXFP4 weights vs ours.
  const Dequant d = compare_dequant(*a.get("--gguf-mxfp4"), m);
  llama_backend_free();

  const bool ok_rel = worst_rel <= max_rel, ok_bpb = std::fabs(bpb_llama - bpb_fast) <= max_bpb,
             ok_deq = d.tensors > 0 && d.other == 0, ok_tok = tokens_are_bytes;
  JsonObject o;
  o.str("export", export_path).integer("windows", W).integer("context", T)
      .num("f32_max_rel_logit_diff", worst_rel).num("f32_bar", max_rel)
      .num("f32_bits_per_byte_mxqat", bits_per_byte(f32_nll_ours / n))
      .num("f32_bits_per_byte_llamacpp", bits_per_byte(f32_nll_llama / n))
      .num("mxfp4_bits_per_byte_llamacpp", bpb_llama).num("mxfp4_bits_per_byte_mxqat_fast", bpb_fast)
      .num("mxfp4_bits_per_byte_diff", bpb_llama - bpb_fast).num("mxfp4_bar", max_bpb)
      .integer("dequant_tensors", d.tensors).integer("dequant_elements", d.elements)
      .integer("dequant_bit_equal", d.bit_equal).integer("dequant_negative_zero_as_positive", d.neg_zero)
      .integer("dequant_other_differences", d.other)
      .boolean("llamacpp_tokenizes_text_into_bytes", ok_tok)
      .boolean("pass", ok_rel && ok_bpb && ok_deq && ok_tok);
  std::cout << o.dump() << "\n";
  if (auto out = a.get("--out")) write_file_atomic(*out, o.dump() + "\n");
  if (!ok_rel)
    std::cerr << "FAIL: F32 logits differ by " << worst_rel << " relative (bar " << max_rel << ")\n";
  if (!ok_bpb)
    std::cerr << "FAIL: MXFP4 bits/byte differ by " << bpb_llama - bpb_fast << " (bar " << max_bpb << ")\n";
  if (!ok_deq)
    std::cerr << "FAIL: " << d.other << " dequantized MXFP4 values differ (" << d.tensors << " tensors)\n";
  if (!ok_tok) std::cerr << "FAIL: llama.cpp does not tokenize text into its bytes\n";
  return ok_rel && ok_bpb && ok_deq && ok_tok ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return run(std::vector<std::string>(argv + 1, argv + argc));
  } catch (const std::exception& e) {
    std::cerr << "llamacpp_check: error: " << e.what() << "\n";
    return 2;
  }
}
