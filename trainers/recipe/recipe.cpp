// The recipe schema: one table per struct of recipe.h (key, where it goes, checks), nested into
// the recipe's table, plus the cross-field rules. Reading, validation, overrides and writing
// are generic (recipe_schema.cpp, recipe_emit.cpp). To add a key: a struct field with its
// default in recipe.h and a row here. To add a section: a struct, its table, one nest() row.
#include "trainers/recipe/recipe.h"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "autograd/error.h"
#include "trainers/recipe/recipe_schema.h"
#include "trainers/recipe/recipe_table.h"
#include "trainers/util/nearest.h"

namespace mxqat::trainers {

namespace {

using schema::field;
using schema::nest;
using schema::rule;
using schema::Table;

const Table& optimizer_table() {
  static const Table kTable = schema::table<OptimizerCfg>({
      field("type", &OptimizerCfg::type).one_of({"adamw", "sgd"}),
      field("lr", &OptimizerCfg::lr).gt(0),
      field("weight_decay", &OptimizerCfg::weight_decay).ge(0),
      field("beta1", &OptimizerCfg::beta1).ge(0).lt(1),
      field("beta2", &OptimizerCfg::beta2).ge(0).lt(1),
      field("eps", &OptimizerCfg::eps).gt(0),
      field("momentum", &OptimizerCfg::momentum).ge(0).lt(1),
      field("nesterov", &OptimizerCfg::nesterov),
      field("scale_lr_factor", &OptimizerCfg::scale_lr_factor).gt(0),
      rule<OptimizerCfg>("", [](const OptimizerCfg& o) -> std::string {
        if (o.type != "sgd" && (o.momentum != 0 || o.nesterov))
          return "momentum and nesterov apply to type: sgd only; remove them or set type: sgd";
        if (o.nesterov && o.momentum == 0) return "nesterov needs momentum > 0, e.g. momentum: 0.9";
        return "";
      }),
  });
  return kTable;
}

const Table& lr_schedule_table() {
  static const Table kTable = schema::table<LrScheduleCfg>({
      field("type", &LrScheduleCfg::type).one_of({"constant", "cosine", "linear"}),
      field("warmup_steps", &LrScheduleCfg::warmup_steps).ge(0),
      field("min_lr", &LrScheduleCfg::min_lr).ge(0),
  });
  return kTable;
}

const Table& data_table() {
  static const Table kTable = schema::table<DataCfg>({
      field("dataset", &DataCfg::dataset).one_of({"fashion_mnist", "text", "tokens"}),
      field("dir", &DataCfg::dir),
      field("batch_size", &DataCfg::batch_size).ge(1),
      field("val_size", &DataCfg::val_size).ge(0),
      field("train_limit", &DataCfg::train_limit).ge(0),
      field("test_limit", &DataCfg::test_limit).ge(0),
      field("normalize", &DataCfg::normalize),
      field("token_bytes", &DataCfg::token_bytes).ge(2).le(4),
      rule<DataCfg>("token_bytes", [](const DataCfg& d) -> std::string {
        return d.token_bytes == 2 || d.token_bytes == 4
                   ? ""
                   : "token_bytes " + std::to_string(d.token_bytes) +
                         " is neither 2 (uint16 ids) nor 4 (uint32 ids)";
      }),
  });
  return kTable;
}

const Table& model_table() {
  static const Table kTable = schema::table<ModelCfg>({
      field("type", &ModelCfg::type).required().one_of({"mlp", "cnn", "gpt"}),
      field("hidden", &ModelCfg::hidden).ge(1),
      field("activation", &ModelCfg::activation).one_of({"relu", "gelu", "silu", "tanh"}),
      field("dropout", &ModelCfg::dropout).ge(0).lt(1),
      field("channels", &ModelCfg::channels).ge(1).non_empty(),
      field("kernel", &ModelCfg::kernel).ge(1).odd(),
      field("fc", &ModelCfg::fc).ge(1),
      field("vocab", &ModelCfg::vocab).ge(2),
      field("layers", &ModelCfg::layers).ge(1),
      field("d_model", &ModelCfg::d_model).ge(2),
      field("heads", &ModelCfg::heads).ge(1),
      field("context", &ModelCfg::context).ge(1),
      field("mlp_hidden", &ModelCfg::mlp_hidden).ge(1),
      field("kv_heads", &ModelCfg::kv_heads).ge(0),
      field("rope_theta", &ModelCfg::rope_theta).gt(0),
      field("norm_eps", &ModelCfg::norm_eps).gt(0),
      field("from", &ModelCfg::from),
      rule<ModelCfg>("kv_heads", [](const ModelCfg& m) -> std::string {
        if (m.type != "gpt" || m.kv_heads == 0 || (m.kv_heads <= m.heads && m.heads % m.kv_heads == 0))
          return "";
        return "kv_heads " + std::to_string(m.kv_heads) + " must divide heads " +
               std::to_string(m.heads) + " (grouped-query attention); use a divisor, or 0 for heads";
      }),
      rule<ModelCfg>("from", [](const ModelCfg& m) -> std::string {
        return m.from.empty() || m.type == "gpt" ? "" : "model.from imports a llama checkpoint "
               "into a gpt model; set model.type: gpt or remove model.from";
      }),
      rule<ModelCfg>("d_model", [](const ModelCfg& m) -> std::string {
        if (m.type != "gpt") return "";
        if (m.d_model % m.heads != 0)
          return "d_model " + std::to_string(m.d_model) + " is not divisible by heads " +
                 std::to_string(m.heads) + "; make d_model a multiple of heads";
        if ((m.d_model / m.heads) % 2 != 0)
          return "the head size d_model / heads = " + std::to_string(m.d_model / m.heads) +
                 " must be even for the rotary embedding; change heads";
        return "";
      }),
  });
  return kTable;
}

// Both sections share this table; `train` must set its length (see the recipe rule), `qat` may
// leave it for recipes that never run the qat stage.
std::string length_rule(const TrainCfg& t) {
  if (t.epochs > 0 && t.steps > 0)
    return "set only one of epochs and steps (got epochs: " + std::to_string(t.epochs) +
           ", steps: " + std::to_string(t.steps) + ")";
  return "";
}

std::string schedule_rule(const TrainCfg& t) {
  const auto& s = t.lr_schedule;
  if (s.type != "constant" && s.min_lr > t.optimizer.lr) {
    std::ostringstream os;
    os << "min_lr " << s.min_lr << " is above optimizer.lr " << t.optimizer.lr
       << "; the schedule decays from lr down to min_lr";
    return os.str();
  }
  if (t.steps > 0 && s.warmup_steps > t.steps)
    return "warmup_steps " + std::to_string(s.warmup_steps) + " exceeds the " +
           std::to_string(t.steps) + " training steps; shorten the warmup";
  return "";
}

const Table& train_table() {
  static const Table kTable = schema::table<TrainCfg>({
      field("epochs", &TrainCfg::epochs).ge(0),
      field("steps", &TrainCfg::steps).ge(0),
      nest("optimizer", optimizer_table(), &TrainCfg::optimizer),
      nest("lr_schedule", lr_schedule_table(), &TrainCfg::lr_schedule),
      field("grad_clip", &TrainCfg::grad_clip).ge(0),
      field("label_smoothing", &TrainCfg::label_smoothing).ge(0).lt(1),
      field("eval_every", &TrainCfg::eval_every).ge(0),
      field("log_every", &TrainCfg::log_every).ge(1),
      field("checkpoint_every", &TrainCfg::checkpoint_every).ge(0),
      field("micro_batches", &TrainCfg::micro_batches).ge(1),
      rule<TrainCfg>("", length_rule),
      rule<TrainCfg>("lr_schedule", schedule_rule),
  });
  return kTable;
}

const std::vector<std::string>& scale_rules() {
  static const std::vector<std::string> k{"floor", "rceil"};
  return k;
}

std::string phase_rule(const PhaseCfg& p) {
  if (!p.format.empty() && (!p.weight.empty() || !p.input.empty()))
    return "give either format (weight and input) or weight/input, not both";
  if (p.format.empty() && p.weight.empty() && p.input.empty())
    return "a phase names a codec: format: mxfp4 (or weight: / input:)";
  return "";
}

const Table& phase_table() {
  static const Table kTable = schema::table<PhaseCfg>({
      field("until", &PhaseCfg::until).gt(0).le(1),
      field("format", &PhaseCfg::format),
      field("weight", &PhaseCfg::weight),
      field("input", &PhaseCfg::input),
      rule<PhaseCfg>("", phase_rule),
  });
  return kTable;
}

const Table& quant_rule_table() {
  static const Table kTable = schema::table<QuantRuleCfg>({
      field("match", &QuantRuleCfg::match).required(),
      field("weight", &QuantRuleCfg::weight),
      field("input", &QuantRuleCfg::input),
      field("grad_output", &QuantRuleCfg::grad_output),
      schema::list("schedule", phase_table(), &QuantRuleCfg::schedule),
  });
  return kTable;
}

// Codec names are checked against the codec table when the policy is resolved (quant/policy),
// where the error can name the rule and list every known codec.
const Table& quant_table() {
  static const Table kTable = schema::table<QuantCfg>({
      field("weight", &QuantCfg::weight),
      field("input", &QuantCfg::input),
      field("grad_output", &QuantCfg::grad_output),
      field("scale_rule", &QuantCfg::scale_rule).one_of(scale_rules()),
      field("ste", &QuantCfg::ste).one_of({"clipped", "identity"}),
      field("group_size", &QuantCfg::group_size).ge(0),
      field("rotation", &QuantCfg::rotation).one_of({"none", "hadamard"}),
      field("rotation_seed", &QuantCfg::rotation_seed).ge(0),
      field("product", &QuantCfg::product).one_of({"fp32_chain", "mx_native"}),
      field("learned_scale", &QuantCfg::learned_scale).one_of({"none", "lsq"}),
      field("grad_rounding", &QuantCfg::grad_rounding).one_of({"nearest", "stochastic"}),
      field("backward_operands", &QuantCfg::backward_operands).one_of({"reuse", "requantize"}),
      schema::list("schedule", phase_table(), &QuantCfg::schedule),
      schema::list("rules", quant_rule_table(), &QuantCfg::rules),
      rule<QuantCfg>("rotation", [](const QuantCfg& q) -> std::string {
        if (q.rotation == "hadamard" && q.backward_operands == "requantize")
          return "rotation: hadamard does not combine with backward_operands: requantize (the "
                 "backward would quantize unrotated operands against the rotated forward); drop one";
        return "";
      }),
  });
  return kTable;
}

const Table& distill_table() {
  static const Table kTable = schema::table<DistillCfg>({
      field("weight", &DistillCfg::weight).ge(0).le(1),
      field("temperature", &DistillCfg::temperature).gt(0),
  });
  return kTable;
}

const Table& qat_extra_table() {
  static const Table kTable = schema::table<QatCfg>({
      field("from", &QatCfg::from),
      field("init", &QatCfg::init).one_of({"baseline", "scratch"}),
      field("monitor_every", &QatCfg::monitor_every).ge(0),
      field("sqnr_warn_db", &QatCfg::sqnr_warn_db),
      field("on_nonfinite", &QatCfg::on_nonfinite).one_of({"skip", "stop"}),
      nest("distill", distill_table(), &QatCfg::distill),
  });
  return kTable;
}

// Why `method` is not a PTQ method ("" when it is).
std::string method_problem(const std::string& method) {
  static const std::vector<std::string> kSmooth = {"smoothquant", "awq"}, kQuant = {"rtn", "mse", "gptq"};
  const size_t plus = method.find('+');
  const std::string smooth = plus == std::string::npos ? "" : method.substr(0, plus);
  const std::string quant = plus == std::string::npos ? method : method.substr(plus + 1);
  const auto known = [](const std::vector<std::string>& v, const std::string& w) {
    return std::find(v.begin(), v.end(), w) != v.end();
  };
  std::string bad;
  std::vector<std::string> all = kQuant;
  for (const auto& s : kSmooth)
    for (const auto& q : kQuant) all.push_back(s + "+" + q);
  if (plus != std::string::npos && !known(kSmooth, smooth))
    bad = "unknown smoothing '" + smooth + "' in PTQ method '" + method + "'";
  else if (!known(kQuant, quant))
    bad = "unknown PTQ method '" + method + "'";
  if (bad.empty()) return "";
  const std::string near = nearest(method, all);
  return bad + (near.empty() ? "" : " (did you mean '" + near + "'?)") +
         "; known: rtn, mse, gptq, each optionally after smoothquant+ or awq+ (e.g. awq+gptq)";
}

std::string methods_rule(const PtqCfg& p) {
  for (const auto& m : p.methods)
    if (const std::string bad = method_problem(m); !bad.empty()) return bad;
  for (size_t i = 0; i < p.methods.size(); ++i)
    for (size_t j = 0; j < i; ++j)
      if (p.methods[i] == p.methods[j]) return "PTQ method '" + p.methods[i] + "' is listed twice";
  return "";
}

const Table& ptq_table() {
  static const Table kTable = schema::table<PtqCfg>({
      field("methods", &PtqCfg::methods).non_empty(),
      field("calib_samples", &PtqCfg::calib_samples).ge(1),
      field("observer", &PtqCfg::observer).one_of({"minmax", "percentile", "mse"}),
      field("percentile", &PtqCfg::percentile).gt(0).le(100),
      field("gptq_damp", &PtqCfg::gptq_damp).gt(0),
      field("smoothquant_alpha", &PtqCfg::smoothquant_alpha).ge(0).le(1),
      field("smoothquant_grid", &PtqCfg::smoothquant_grid).ge(0).le(1000),
      field("awq_grid", &PtqCfg::awq_grid).ge(1).le(1000),
      field("save_models", &PtqCfg::save_models),
      rule<PtqCfg>("methods", methods_rule),
  });
  return kTable;
}

// Format names are checked against the codec table when `run` derives the variants.
const Table& compare_table() {
  static const Table kTable = schema::table<CompareCfg>({
      field("formats", &CompareCfg::formats),
      field("qat_direct", &CompareCfg::qat_direct),
      field("qat_progressive", &CompareCfg::qat_progressive),
      field("qat_lsq", &CompareCfg::qat_lsq),
  });
  return kTable;
}

// A run's files are named after it, so the name must be a plain file name.
std::string name_problem(const std::string& name) {
  bool ok = !name.empty() && name[0] != '.' && name.size() <= 100;
  for (char c : name)
    ok = ok && ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                c == '.' || c == '_' || c == '-');
  if (ok) return "";
  return "'" + name + "' may hold only letters, digits, '.', '_' and '-' (it names the run's "
         "files), e.g. name: fashion_mlp";
}

std::string micro_batch_problem(const char* section, int64_t m, int64_t batch) {
  if (m <= 1 || batch <= 0 || batch % m == 0) return "";
  return std::string(section) + ".micro_batches " + std::to_string(m) + " does not divide " +
         "data.batch_size " + std::to_string(batch) + "; the micro-batches must be equal: pick a " +
         "divisor of the batch size";
}

const Table& recipe_table() {
  static const Table kTable = [] {
    Table t = schema::table<Recipe>({
        field("name", &Recipe::name),
        field("seed", &Recipe::seed).ge(0),
        nest("data", data_table(), &Recipe::data),
        nest("model", model_table(), &Recipe::model),
        nest("train", train_table(), &Recipe::train),
        nest("quant", quant_table(), &Recipe::quant),
        nest("qat", qat_extra_table(), &Recipe::qat),
        nest("qat", train_table(), &Recipe::qat, &QatCfg::train),
        nest("ptq", ptq_table(), &Recipe::ptq),
        nest("compare", compare_table(), &Recipe::compare),
        rule<Recipe>("train", [](const Recipe& r) {
          return r.train.epochs > 0 || r.train.steps > 0 || !r.model.from.empty()
                     ? std::string()
                     : std::string("set train.epochs or train.steps to a positive number (or "
                                   "model.from: a llama checkpoint to import instead of training)");
        }),
        rule<Recipe>("model.type", [](const Recipe& r) {
          if ((r.model.type == "gpt") == (r.data.dataset != "fashion_mnist")) return std::string();
          return "model.type " + r.model.type + " does not read data.dataset " + r.data.dataset +
                 "; gpt trains on dataset: text or tokens, mlp and cnn on fashion_mnist";
        }),
        rule<Recipe>("model.vocab", [](const Recipe& r) {
          if (r.model.type != "gpt" || r.data.dataset != "text" || r.model.vocab >= 256)
            return std::string();
          return "model.vocab " + std::to_string(r.model.vocab) + " is below 256, but data.dataset "
                 "text is byte-level (ids 0..255); set vocab: 256, or use dataset: tokens";
        }),
        rule<Recipe>("name", [](const Recipe& r) {
          return r.name.empty() ? std::string() : name_problem(r.name);
        }),
        rule<Recipe>("train.micro_batches", [](const Recipe& r) {
          return micro_batch_problem("train", r.train.micro_batches, r.data.batch_size);
        }),
        rule<Recipe>("qat.micro_batches", [](const Recipe& r) {
          return micro_batch_problem("qat", r.qat.train.micro_batches, r.data.batch_size);
        }),
        rule<Recipe>("train.optimizer.scale_lr_factor", [](const Recipe& r) {
          return r.train.optimizer.scale_lr_factor == 1.0
                     ? std::string()
                     : std::string("scale_lr_factor scales the learned scale offsets of QAT "
                                   "(quant.learned_scale: lsq), and FP32 training has none; set it "
                                   "under qat.optimizer instead");
        }),
        rule<Recipe>("qat.optimizer.scale_lr_factor", [](const Recipe& r) {
          return r.qat.train.optimizer.scale_lr_factor == 1.0 || r.quant.learned_scale == "lsq" ||
                         r.compare.qat_lsq
                     ? std::string()
                     : std::string("scale_lr_factor applies to learned scale offsets, and this "
                                   "recipe learns none; set quant.learned_scale: lsq (or "
                                   "compare.qat_lsq: true), or remove scale_lr_factor");
        }),
    });
    schema::detail::validate_table(t);  // once, not on every parse and emit
    t.validated = true;
    return t;
  }();
  return kTable;
}

}  // namespace

namespace {
// Recipes are UTF-8 text: a stray byte (invalid UTF-8, a control character) would not survive
// the effective recipe's round trip through YAML (checkpoints store and re-read it), so it is
// refused where it is, by line and column.
void check_text(const std::string& text, const std::string& what) {
  int line = 1, col = 1;
  for (size_t i = 0; i < text.size();) {
    const auto c = static_cast<unsigned char>(text[i]);
    size_t len = c < 0x80 ? 1 : (c >> 5) == 0x6 ? 2 : (c >> 4) == 0xE ? 3 : (c >> 3) == 0x1E ? 4 : 0;
    bool ok = len != 0 && i + len <= text.size() && (c >= 0x20 || c == '\t' || c == '\n' || c == '\r') &&
              c != 0x7F && c != 0xC0 && c != 0xC1 && c < 0xF5;
    for (size_t k = 1; ok && k < len; ++k) ok = (static_cast<unsigned char>(text[i + k]) >> 6) == 0x2;
    MXQAT_CHECK(ok, what, ": line ", line, ", column ", col, " holds the byte 0x", std::hex,
                int(c), std::dec, ", which is not UTF-8 text (or is a control character); "
                "recipes are UTF-8 text: fix or remove it");
    if (c == '\n') ++line, col = 1;
    else ++col;
    i += len;
  }
}
}  // namespace

Recipe parse_recipe(const std::string& yaml_text, const std::string& source,
                    const std::vector<std::string>& overrides) {
  check_text(yaml_text, source);
  for (const std::string& o : overrides) check_text(o, source + ": --set " + o.substr(0, 40));
  Recipe r;
  schema::parse(recipe_table(), r, yaml_text, source, overrides);
  r.source = source;
  if (r.name.empty()) {
    bool is_file = !source.empty() && source[0] != '<';
    r.name = is_file ? std::filesystem::path(source).stem().string() : "recipe";
    std::string why = name_problem(r.name);
    MXQAT_CHECK(why.empty(), source, ": the recipe's name defaults to its file name, and ", why,
                "; add a name: key or rename the file");
  }
  r.text = schema::emit(recipe_table(), r);
  return r;
}

Recipe load_recipe(const std::string& path, const std::vector<std::string>& overrides) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (!fs::exists(path, ec)) {
    fs::path cwd = fs::current_path(ec);
    MXQAT_FAIL("recipe '", path, "' does not exist (relative to ", cwd.string(),
               "); the shipped recipes are in the repository's recipes/ folder");
  }
  MXQAT_CHECK(fs::is_regular_file(path, ec), "recipe '", path, "' is not a file; give a .yaml file");
  MXQAT_CHECK(fs::file_size(path, ec) <= schema::detail::kMaxYamlBytes, "recipe '", path, "' is over ",
              schema::detail::kMaxYamlBytes >> 20, " MiB; a recipe is a short YAML file: check the path");
  std::ifstream in(path, std::ios::binary);
  MXQAT_CHECK(in, "cannot read recipe '", path, "': ", std::strerror(errno));
  std::ostringstream text;
  text << in.rdbuf();
  MXQAT_CHECK(!in.bad(), "cannot read recipe '", path, "': ", std::strerror(errno));
  return parse_recipe(text.str(), path, overrides);
}

bool operator==(const Recipe& a, const Recipe& b) {
  return schema::diff(recipe_table(), a, b).empty();
}

std::vector<std::string> recipe_diff(const Recipe& a, const Recipe& b) {
  return schema::diff(recipe_table(), a, b);
}

PtqMethod split_ptq_method(const std::string& method) {
  const std::string bad = method_problem(method);
  MXQAT_CHECK(bad.empty(), bad);
  const size_t plus = method.find('+');
  if (plus == std::string::npos) return {"", method};
  return {method.substr(0, plus), method.substr(plus + 1)};
}

}  // namespace mxqat::trainers
