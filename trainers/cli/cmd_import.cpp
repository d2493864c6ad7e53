// `mxqat import`: a Hugging Face llama checkpoint -> an mxqat baseline checkpoint (and recipe).
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <iostream>

#include "trainers/io/ckpt.h"
#include "trainers/cli/cli_args.h"
#include "trainers/cli/commands.h"
#include "trainers/interop/llama_import.h"
#include "trainers/model/model_factory.h"
#include "trainers/util/json_write.h"

namespace mxqat::trainers {

namespace {
// A run name from the checkpoint folder's name: the characters a recipe name allows.
std::string name_of(const std::string& dir) {
  std::string n = std::filesystem::path(dir).lexically_normal().filename().string();
  if (n.empty()) n = std::filesystem::path(dir).lexically_normal().parent_path().filename().string();
  for (char& c : n)
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '.' && c != '_' && c != '-') c = '_';
  while (!n.empty() && n[0] == '.') n.erase(0, 1);
  return n.empty() ? "imported" : n.substr(0, 100);
}
}  // namespace

int cmd_import(const std::vector<std::string>& argv) {
  Args a("import", argv,
         {{"--out", true}, {"--recipe", true}, {"--set", true, true}, {"--context", true},
          {"--print-recipe", false}},
         1, 1);
  const std::string dir = a.positional()[0];
  MXQAT_CHECK(a.has("--out") || a.has("--print-recipe"), "import: give --out RUN_DIR (writes "
              "RUN_DIR/checkpoint.h5 and RUN_DIR/recipe.yaml) or --out FILE.h5, or --print-recipe");
  const ModelCfg cfg = read_llama_config(dir);
  // Training windows default to at most 1024 tokens; the model accepts up to the context.
  const int64_t context = int_flag(a, "--context", std::min<int64_t>(cfg.context, 1024), 1);
  std::vector<std::string> sets = llama_model_overrides(cfg, context);
  for (const auto& s : a.all("--set")) sets.push_back(s);  // the user's last: data.dir etc.
  const std::string base =
      a.has("--recipe") ? read_file(*a.get("--recipe"))
                        : "name: " + name_of(dir) + "\ndata: {dataset: tokens, dir: data/tokens}\n"
                          "model: {type: gpt}\n";
  const Recipe r = parse_recipe(base, a.get_or("--recipe", "<import " + dir + ">"), sets);
  if (a.has("--print-recipe")) {
    std::cout << r.text;
    return 0;
  }
  const LlamaCheckpoint ck = read_llama(dir);
  check_llama_model(r.model, ck);
  auto model = build_model(r, r.model.context, r.model.vocab);
  load_llama(*model, ck);

  std::string out = *a.get("--out"), ckpt_path = out;
  const bool to_file = std::filesystem::path(out).extension() == ".h5";
  if (!to_file) {
    std::filesystem::create_directories(out);
    ckpt_path = (std::filesystem::path(out) / "checkpoint.h5").string();
    write_file_atomic((std::filesystem::path(out) / "recipe.yaml").string(), r.text);
  }
  Checkpoint k;
  k.recipe_text = r.text;
  for (const auto& [name, v] : model->named_parameters()) k.params.emplace_back(name, v.value());
  k.meta["model"] = "gpt";
  k.meta["stage"] = "import";
  k.meta["imported_from"] = dir;
  k.rng_state = "seed=" + std::to_string(r.seed);
  save_checkpoint(ckpt_path, k);
  std::cout << "imported " << dir << " (" << ck.model.layers << " layers, d_model "
            << ck.model.d_model << ", " << ck.model.heads << " heads / " << ck.model.kv_heads
            << " kv, vocab " << ck.model.vocab << ", " << ck.dtypes << (ck.tied ? ", tied head" : "")
            << "): " << model->num_parameters() << " parameters -> " << ckpt_path << "\n";
  return 0;
}

}  // namespace mxqat::trainers
