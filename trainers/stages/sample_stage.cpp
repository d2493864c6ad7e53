// Samples and the KV-cache table of a gpt run (sample_stage.h).
#include "trainers/stages/sample_stage.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <filesystem>
#include <utility>
#include <vector>

#include "trainers/data/text_data.h"
#include "trainers/recipe/recipe.h"
#include "trainers/runtime/generate.h"
#include "trainers/util/json_read.h"
#include "trainers/util/json_write.h"

namespace mxqat::trainers {

namespace {
namespace fs = std::filesystem;

// Up to 40 bytes from the start of the split's second line (the first may be cut), ending at a
// word boundary; the split's start when it holds one line.
std::string prompt_of(const TokenIds& split, int64_t context) {
  std::string text;  // byte-level text: every id is a byte
  for (size_t i = 0; i < std::min<size_t>(split.size(), 4096); ++i) text += static_cast<char>(split[i]);
  size_t start = text.find('\n');
  start = start == std::string::npos || start + 2 >= text.size() ? 0 : start + 1;
  const size_t limit = size_t(std::min<int64_t>(40, std::max<int64_t>(1, context / 2)));
  std::string p = text.substr(start, limit);
  if (const size_t nl = p.find('\n'); nl != std::string::npos && nl > 0) p = p.substr(0, nl);
  if (p.size() == limit) {
    const size_t sp = p.rfind(' ');
    if (sp != std::string::npos && sp > 0) p = p.substr(0, sp + 1);
  }
  return p;
}

bool fresh(const std::string& out, const std::vector<std::string>& sources) {
  if (!fs::exists(out)) return false;
  const auto t = fs::last_write_time(out);
  for (const auto& s : sources)
    if (fs::last_write_time(s) > t) return false;
  return true;
}
}  // namespace

bool write_gpt_samples(const std::string& run_dir, const SampleStageOptions& o) {
  const std::string recipe_path = run_dir + "/ptq/recipe.yaml";
  MXQAT_CHECK(fs::exists(recipe_path), "samples: ", recipe_path, " is missing: the ptq stage has not "
              "finished; run 'mxqat run RECIPE --out ", run_dir, "' (it resumes) first");
  const Recipe r = load_recipe(recipe_path);
  if (r.model.type != "gpt") return false;
  if (r.data.dataset == "tokens") {  // ids of the user's tokenizer: no text to prompt or print
    spdlog::info("samples: skipped, a token-id model has no tokenizer in mxqat "
                 "(`mxqat sample MODEL --eval-kv N` measures its KV cache)");
    return false;
  }
  // (label, model file): the FP32 baseline checkpoint, its RTN export, every QAT export.
  std::vector<std::pair<std::string, std::string>> models = {
      {"baseline (FP32)", run_dir + "/baseline/checkpoint.h5"},
      {"baseline, round to nearest", run_dir + "/export/baseline_rtn.h5"}};
  const Json qat = Json::read(run_dir + "/qat/summary.json");
  for (const Json& v : qat.at("variants").array())
    models.emplace_back("QAT " + v.at("id").string(), run_dir + "/export/" + v.at("id").string() + ".h5");
  const std::string main_export = run_dir + "/export/" + qat.at("main").string() + ".h5";
  std::vector<std::string> sources;
  for (const auto& [label, path] : models) {
    MXQAT_CHECK(fs::exists(path), "samples: ", path, " is missing; run 'mxqat run RECIPE --out ", run_dir,
                "' to finish the export stage first");
    sources.push_back(path);
  }
  const std::string dir = run_dir + "/sample";
  const std::string samples_path = dir + "/samples.json", kv_path = dir + "/kv_cache.json";
  if (fresh(samples_path, sources) && fresh(kv_path, sources)) return true;
  fs::create_directories(dir);

  const InferenceModel main = load_gpt(main_export);
  const int64_t context = gpt_of(main).config().context;
  const TextData text = load_text(r.data, context, 1, uint64_t(r.seed));
  SampleOptions so;
  so.tokens = o.tokens;
  so.temperature = float(o.temperature);
  so.seed = uint64_t(r.seed);
  const std::string prompt = prompt_of(text.test, context);
  JsonArray list;
  for (const auto& [label, path] : models) {
    const InferenceModel im = load_gpt(path);
    const Generation g = generate(gpt_of(im), prompt, so);
    list.add(JsonObject().str("model", label).str("file", path.substr(run_dir.size() + 1)).str("text", g.text));
  }
  write_file_atomic(samples_path, JsonObject().str("prompt", prompt).integer("seed", int64_t(so.seed))
                                      .num("temperature", o.temperature).integer("tokens", so.tokens)
                                      .raw("samples", list.dump_lines()).dump() + "\n");
  spdlog::info("samples: {} models, {} bytes each from the same prompt and seed -> {}", models.size(),
               so.tokens, samples_path);

  const int64_t windows = std::min<int64_t>(o.kv_windows, (int64_t(text.test.size()) - 1) / context);
  JsonArray rows;
  for (const char* kv : {"none", "mxfp8_e4m3", "int8_sym"}) {
    if (windows < 1) break;  // a test split shorter than one window: no table
    const KvEval e = eval_kv_cache(gpt_of(main), text.test, windows, kv);
    rows.add(JsonObject().str("kv_cache", e.kv_cache).num("test_bits_per_byte", e.bits_per_byte)
                 .num("full_forward_bits_per_byte", e.full_bits_per_byte)
                 .num("max_abs_logit_diff", e.max_abs_logit_diff).integer("kv_bytes_per_token", e.bytes_per_token)
                 .num("seconds", e.seconds));
  }
  write_file_atomic(kv_path, JsonObject().str("model", main_export.substr(run_dir.size() + 1))
                                 .integer("windows", windows).integer("predictions", windows * context)
                                 .raw("settings", rows.dump_lines()).dump() + "\n");
  spdlog::info("samples: KV-cache table over {} test windows -> {}", windows, kv_path);
  return true;
}

}  // namespace mxqat::trainers
