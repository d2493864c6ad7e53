// `mxqat sample`: text from a byte-level gpt (export or checkpoint) with the KV cache, tokens/s on
// stderr; or, with --eval-kv N, test bits per byte under each KV-cache setting (teacher-forced
// incremental decoding) and the cache's bytes per token.
#include <omp.h>

#include <iostream>

#include "trainers/cli/cli_args.h"
#include "trainers/cli/commands.h"
#include "trainers/data/text_data.h"
#include "trainers/recipe/recipe.h"
#include "trainers/runtime/generate.h"
#include "trainers/util/json_write.h"

namespace mxqat::trainers {

namespace {
// --eval-kv N: one JSON line per setting (none, mxfp8_e4m3, int8_sym, or the --kv-cache given).
int eval_kv(const Args& a, const InferenceModel& im, const std::string& path) {
  const Recipe r = parse_recipe(im.recipe.text, path + ":/recipe", a.all("--set"));
  layers::Gpt& gpt = gpt_of(im);
  const TextData text = load_text(r.data, gpt.config().context, 1, uint64_t(r.seed), r.model.vocab);
  const int64_t windows = int_flag(a, "--eval-kv", 0, 1);
  const std::vector<std::string> settings =
      a.has("--kv-cache") ? std::vector<std::string>{*a.get("--kv-cache")}
                          : std::vector<std::string>{"none", "mxfp8_e4m3", "int8_sym"};
  for (const auto& s : settings) {
    const KvEval e = eval_kv_cache(gpt, text.test, windows, s);
    std::cout << JsonObject().str("model", path).str("kv_cache", e.kv_cache)
                     .integer("windows", e.windows).integer("predictions", e.predictions)
                     .num("test_bits_per_" + text.unit, e.bits_per_byte)
                     .num("full_forward_bits_per_" + text.unit, e.full_bits_per_byte)
                     .num("max_abs_logit_diff", e.max_abs_logit_diff)
                     .integer("kv_bytes_per_token", e.bytes_per_token)
                     .num("seconds", e.seconds).dump()
              << std::endl;
  }
  return 0;
}
}  // namespace

int cmd_sample(const std::vector<std::string>& argv) {
  Args a("sample", argv,
         {{"--prompt", true}, {"--tokens", true}, {"--temperature", true}, {"--seed", true},
          {"--top-k", true}, {"--kv-cache", true}, {"--fast", false}, {"--threads", true},
          {"--eval-kv", true}, {"--set", true, true}},
         1, 1);
  apply_threads(a);
  const std::string path = a.positional()[0];
  const InferenceModel im = load_gpt(path, a.has("--fast") ? InferPath::kFast : InferPath::kReference);
  if (a.has("--eval-kv")) return eval_kv(a, im, path);
  MXQAT_CHECK(a.has("--prompt"), "mxqat sample: --prompt TEXT is required (or --eval-kv N)");
  MXQAT_CHECK(im.recipe.data.dataset != "tokens", "mxqat sample: ", path, " reads token ids of "
              "its own tokenizer (data.dataset: tokens), and mxqat has no tokenizer to turn --prompt "
              "into ids or ids into text; --eval-kv N still measures it on the test split");
  SampleOptions o;
  o.tokens = int_flag(a, "--tokens", o.tokens, 0);
  o.temperature = float(float_flag(a, "--temperature", o.temperature));
  o.top_k = int_flag(a, "--top-k", o.top_k, 0);
  o.seed = uint64_t(int_flag(a, "--seed", 0, 0));
  o.kv_cache = a.get_or("--kv-cache", o.kv_cache);
  const std::string prompt = *a.get("--prompt");
  const Generation g = generate(gpt_of(im), prompt, o);
  std::cout << prompt << g.text << std::endl;
  std::cerr << JsonObject().str("model", path).str("kv_cache", o.kv_cache)
                   .str("path", a.has("--fast") ? "fast" : "reference")
                   .integer("threads", omp_get_max_threads()).integer("seed", int64_t(o.seed))
                   .num("temperature", o.temperature).integer("top_k", o.top_k)
                   .integer("prompt_tokens", g.prompt_tokens).integer("new_tokens", g.new_tokens)
                   .integer("refills", g.refills).num("prefill_s", g.prefill_s)
                   .num("decode_s", g.decode_s)
                   .num("tokens_per_s", g.decode_s > 0 ? double(g.new_tokens) / g.decode_s : 0.0)
                   .integer("kv_bytes_per_token", g.kv_bytes_per_token).dump()
            << std::endl;
  return 0;
}

}  // namespace mxqat::trainers
