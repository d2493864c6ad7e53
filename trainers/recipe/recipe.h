// A recipe: the typed settings of one job (data, model, training), read from YAML and validated
// against the schema table in recipe.cpp. The structs carry the defaults; YAML only overrides.
// No yaml-cpp here (STYLE.md §1): it stays inside trainers/recipe*.cpp.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace mxqat::trainers {

struct OptimizerCfg {
  std::string type = "adamw";  // adamw | sgd
  double lr = 1e-3;
  double weight_decay = 0.0;   // decoupled for adamw, L2 for sgd
  double beta1 = 0.9, beta2 = 0.999, eps = 1e-8;  // adamw
  double momentum = 0.0;       // sgd
  bool nesterov = false;       // sgd, needs momentum > 0
  // The learned scale offsets' (quant.learned_scale: lsq) learning rate as a multiple of lr: an
  // offset must move by 0.5 (log2) before an MX block exponent changes, which at a fine-tuning lr
  // takes hundreds of steps; a separate factor is LSQ practice (a parameter group of its own).
  double scale_lr_factor = 1.0;
};

struct LrScheduleCfg {
  std::string type = "constant";  // constant | cosine | linear (decay to min_lr after warmup)
  int64_t warmup_steps = 0;       // linear ramp from 0 to lr
  double min_lr = 0.0;
};

struct DataCfg {
  // fashion_mnist | text (dir/{train,val,test}.txt, bytes) | tokens (dir/{train,val,test}.bin,
  // little-endian token ids of token_bytes each, from the user's own tokenizer)
  std::string dataset = "fashion_mnist";
  std::string dir = "/usr/share/datasets/fashion-mnist";
  int64_t batch_size = 128;
  int64_t val_size = 5000;   // held out from the training split
  int64_t train_limit = 0;   // 0 = all
  int64_t test_limit = 0;    // 0 = all
  bool normalize = true;
  int64_t token_bytes = 2;   // tokens: 2 (uint16) or 4 (uint32) per id
};

struct ModelCfg {
  std::string type;                     // required: mlp | cnn | gpt
  std::vector<int64_t> hidden = {256};  // mlp: hidden widths
  std::string activation = "relu";      // relu | gelu | silu | tanh
  double dropout = 0.0;
  std::vector<int64_t> channels = {32, 64};  // cnn: conv widths
  int64_t kernel = 5;                        // cnn: odd kernel size
  int64_t fc = 128;                          // cnn: width of the hidden fully connected layer
  int64_t vocab = 256;                       // gpt: 256 bytes for text; the tokenizer's for tokens
  int64_t layers = 4;                        // gpt: transformer blocks
  int64_t d_model = 256;                     // gpt: width, a multiple of heads
  int64_t heads = 4;                         // gpt: attention heads (head size d_model / heads, even)
  int64_t kv_heads = 0;                      // gpt: key/value heads dividing heads (GQA); 0 = heads
  int64_t context = 128;                     // gpt: tokens per training window and longest input
  int64_t mlp_hidden = 768;                  // gpt: SwiGLU hidden width
  double rope_theta = 10000;                 // gpt: rotary base
  double norm_eps = 1e-5;                    // gpt: RMSNorm epsilon
  // gpt: a Hugging Face llama checkpoint directory (config.json + *.safetensors); the train
  // stage imports it instead of training, and the sizes above must match its config.json
  // (`mxqat import DIR --print-recipe` prints them).
  std::string from;
};

struct TrainCfg {
  int64_t epochs = 0;  // train: exactly one of epochs and steps is > 0; qat: at most one
  int64_t steps = 0;
  OptimizerCfg optimizer;
  LrScheduleCfg lr_schedule;
  double grad_clip = 0.0;         // global L2 norm; 0 = off
  double label_smoothing = 0.0;
  int64_t eval_every = 0;         // steps; 0 = at each epoch end
  int64_t log_every = 50;         // steps
  int64_t checkpoint_every = 0;   // steps; 0 = only at the end
  // The batch is split into this many equal micro-batches whose gradients are summed over a
  // fixed tree (trainers/dist/tree.h): mpirun -np N needs N <= micro_batches, and the bits do
  // not depend on N. 1 = the whole batch at once (the bits of a run without it).
  int64_t micro_batches = 1;
};

// One phase of a progressive schedule: `{until: 0.3, format: mxfp8_e4m3}` (format = weight and
// input), or separate `weight:` / `input:` codecs. `until` is a fraction of the QAT steps.
struct PhaseCfg {
  double until = 1.0;
  std::string format, weight, input;  // "" = unset
};

// One quant rule: layers whose name matches the glob get these codecs ("" = the section's
// default, "none" = full precision) and, if given, this schedule. First match wins.
struct QuantRuleCfg {
  std::string match;
  std::string weight, input, grad_output;
  std::vector<PhaseCfg> schedule;
};

// The `quant` section: default codecs for every GEMM's weight, input activation and (optional)
// output gradient, the MX scale rule, the STE variant, ordered rules and a default schedule.
struct QuantCfg {
  std::string weight = "none", input = "none", grad_output = "none";
  std::string scale_rule = "floor";  // floor | rceil (MX codecs)
  std::string ste = "clipped";       // clipped | identity
  int64_t group_size = 0;            // INT codecs: 0 = per channel
  // none | hadamard: every quantized GEMM's input and weight rotated by a block Hadamard of 32
  // along the reduction axis before their codecs (quant/codec/transform/hadamard.h); the product is
  // unchanged, outliers are spread. rotation_seed 0: fixed signs (all +1); else random signs.
  std::string rotation = "none";
  int64_t rotation_seed = 0;
  // fp32_chain | mx_native (docs/formats.md §14): the forward product of MXFP4 / MXFP6-E2M3
  // layers, and with backward_operands requantize and grad_output mxfp4 / mxfp6_e2m3 the backward
  // products too (§14.3)
  std::string product = "fp32_chain";
  // none | lsq: learned weight scales (quant/fake/lsq.h), one log2 offset per weight row trained
  // in QAT by LSQ's gradient; MX, NVFP4 and symmetric INT weight codecs
  std::string learned_scale = "none";
  std::vector<PhaseCfg> schedule;    // for layers no rule matches; empty = static codecs
  std::vector<QuantRuleCfg> rules;
  // The backward products of layers with a grad_output codec: nearest | stochastic rounding, and
  // reuse (the forward's Q(W), Q(X)) | requantize (W, X in the grad_output codec, blocked along
  // the backward's reduction axes).
  std::string grad_rounding = "nearest";
  std::string backward_operands = "reuse";
};

// `qat.distill`: knowledge distillation from the FP32 baseline (the teacher, run unquantized on
// the same batch), as NVIDIA ModelOpt's quantization-aware distillation. The training loss is
// (1 - weight) cross_entropy(labels) + weight T^2 KL(softmax(teacher / T) || softmax(student / T)).
struct DistillCfg {
  double weight = 0.0;       // 0 = off (labels only), 1 = teacher only
  double temperature = 1.0;
};

// The `qat` section: fine-tuning the baseline under fake quantization. Same keys as `train`
// (length, optimizer, lr_schedule, ...) plus where to start from and the telemetry settings.
struct QatCfg {
  std::string from;                // baseline checkpoint; "" = --from on the command line
  // baseline: QAT fine-tunes the FP32 baseline's weights; scratch: quantized training from the
  // seeded initialisation (the train stage's), compared with the baseline at equal steps.
  std::string init = "baseline";
  TrainCfg train = [] {  // length: qat.epochs or qat.steps, required by the qat stage
    TrainCfg t;
    t.optimizer.lr = 1e-4;
    return t;
  }();
  int64_t monitor_every = 200;     // steps between quantization telemetry records; 0 = off
  double sqnr_warn_db = 5.0;       // warn when a tensor's SQNR falls below this
  std::string on_nonfinite = "skip";  // skip | stop: what a NaN/Inf loss or gradient does
  DistillCfg distill;
};

// The `ptq` section: post-training quantization of the baseline with each method, calibrated on
// samples of the training split, evaluated through the same fake-quant forward as QAT.
// A method is a weight quantizer (rtn | mse | gptq), optionally after a smoothing that is folded
// into the model first: "smoothquant+rtn", "awq+gptq" (see split_ptq_method).
struct PtqCfg {
  std::vector<std::string> methods = {"rtn", "mse", "gptq"};
  int64_t calib_samples = 512;      // from the training split (seeded)
  std::string observer = "minmax";  // minmax | percentile | mse: activation ranges in the report
  double percentile = 99.99;        // for observer: percentile
  double gptq_damp = 0.01;          // GPTQ: damping, as a fraction of the Hessian's mean diagonal
  double smoothquant_alpha = 0.5;   // smoothquant: migration strength in [0, 1]
  // smoothquant: 0 = smoothquant_alpha for every group; N >= 1 = alpha searched per group over
  // 0, 1/N, ..., 1 (and no smoothing) for the least quantized output error, as AWQ's search
  int64_t smoothquant_grid = 0;
  int64_t awq_grid = 20;            // awq: alpha searched over 0, 1/grid, ..., 1
  // Write the model each round-to-nearest method quantizes (rtn, smoothquant+rtn, awq+rtn: the
  // FP32 weights with the smoothing folded in) as OUT/models/<format>_<method>.h5, an FP32
  // checkpoint of the format's recipe, for `mxqat export` and `mxqat verify`.
  bool save_models = false;
};

// A PTQ method name split into its smoothing ("", "smoothquant", "awq") and its weight quantizer
// ("rtn", "mse", "gptq"). An unknown part throws naming the nearest known one.
struct PtqMethod {
  std::string smoothing, quantizer;
};
PtqMethod split_ptq_method(const std::string& method);

// The `compare` section: which target formats `mxqat run` compares (PTQ methods, QAT direct,
// QAT progressive) in the report. A format replaces the recipe's default weight (and input)
// codec; layers kept apart by rules keep theirs.
struct CompareCfg {
  std::vector<std::string> formats;  // empty = the recipe's quant.weight only
  bool qat_direct = true;            // one QAT run per format at that format from step 0
  bool qat_progressive = true;       // and one through the schedule's wider formats (below 8 bits)
  bool qat_lsq = false;              // and one direct with learned weight scales (quant.learned_scale lsq)
};

struct Recipe {
  std::string name;  // optional; defaults to the file's stem
  int64_t seed = 0;
  DataCfg data;
  ModelCfg model;
  TrainCfg train;
  QuantCfg quant;
  QatCfg qat;
  PtqCfg ptq;
  CompareCfg compare;
  std::string source;  // file path or "<string>"
  std::string text;    // the effective recipe as YAML, every field written out, after --set
                       // overrides: stored in checkpoints; parse_recipe(text) reproduces it
};

// Reads, overrides and validates a recipe. Every problem is an mxqat::Error naming the file,
// the line and the key path. Overrides are "a.b=value" with value parsed as YAML
// ("train.optimizer.lr=3e-4", "model.hidden=[512,256]").
Recipe load_recipe(const std::string& path, const std::vector<std::string>& overrides = {});
Recipe parse_recipe(const std::string& yaml_text, const std::string& source = "<string>",
                    const std::vector<std::string>& overrides = {});

// Equal settings: every schema field compares equal (source and text are provenance).
bool operator==(const Recipe& a, const Recipe& b);
inline bool operator!=(const Recipe& a, const Recipe& b) { return !(a == b); }
// The settings that differ, one "path: a -> b" line each (e.g. to explain a refused resume).
std::vector<std::string> recipe_diff(const Recipe& a, const Recipe& b);


}  // namespace mxqat::trainers
