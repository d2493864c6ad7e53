// mxqat's command line: a table of subcommands, each a function of its own file.
#include "trainers/cli/cli.h"

#include <spdlog/spdlog.h>

#include <cstring>
#include <functional>
#include <iostream>
#include <string>
#include <vector>

#include "autograd/error.h"
#include "trainers/cli/cli_args.h"
#include "trainers/cli/commands.h"
#include "trainers/dist/dist.h"
#include "trainers/util/nearest.h"
#include "trainers/util/process.h"
#include "trainers/util/version.h"

namespace mxqat::trainers {

namespace {
struct Command {
  const char* name;
  const char* usage;
  const char* summary;
  std::function<int(const std::vector<std::string>&)> run;
};

const std::vector<Command>& commands() {
  static const std::vector<Command> kCommands = {
      {"run", "RECIPE [--out DIR] [--set k=v ...] [--threads N] [--stop-after STAGE]",
       "the whole job, resumable: baseline -> ptq -> qat -> export -> verify -> report "
       "(DIR defaults to runs/<name>)", cmd_run},
      {"train", "RECIPE [--out DIR] [--set k=v ...] [--resume] [--threads N]",
       "train the recipe's model in FP32 (the baseline)", cmd_train},
      {"qat", "RECIPE --from BASELINE.h5 [--out DIR] [--set k=v ...] [--resume] [--threads N]",
       "fine-tune a baseline under fake quantization (direct cast first, then QAT)", cmd_qat},
      {"ptq", "RECIPE [--from BASELINE.h5] [--out DIR] [--set k=v ...] [--threads N]",
       "post-training quantization of the baseline with each ptq.methods (rtn, mse, gptq, each "
       "optionally after smoothquant+ or awq+) at each compare.formats, evaluated through the "
       "fake-quant forward", cmd_ptq},
      {"import", "HF_DIR --out RUN_DIR|CHECKPOINT.h5 [--recipe RECIPE] [--set k=v ...] "
       "[--context N] | HF_DIR --print-recipe",
       "import a Hugging Face llama checkpoint (config.json + safetensors, F32/F16/BF16, sharded "
       "or not) as a gpt baseline checkpoint; --print-recipe prints a recipe with its model "
       "(model.from: HF_DIR makes `mxqat run` start from it)", cmd_import},
      {"compare", "RECIPE|RUN_DIR [--out DIR]",
       "write the run's report (report.md, .csv, .json, .html)", cmd_compare},
      {"eval", "CHECKPOINT.h5|EXPORT.h5 [--recipe RECIPE] [--threads N]",
       "evaluate a checkpoint (fake-quant if QAT) or an export (reference path) on the test split",
       cmd_eval},
      {"export", "RUN_DIR|CHECKPOINT.h5|MODEL.h5 --out PATH [--format h5|gguf|compressed-tensors] "
                 "[--weights packed|f32] [--dtype f32|bf16]",
       "pack a checkpoint's weights with their codecs into an HDF5 export (docs/formats.md §9, "
       "manifest with SHA-256 of every tensor), or a gpt into GGUF for llama.cpp (§12) or a "
       "compressed-tensors directory for vLLM (§13)", cmd_export},
      {"verify", "MODEL.h5 [--against CHECKPOINT.h5] [--limit N] [--out RESULT.json] [--record] "
       "[--threads N]",
       "prove the export infers exactly like training: bitwise equal logits on the test split; "
       "the export is only read: the result goes to MODEL.verify.json (or --out), and into the "
       "export's manifest only with --record", cmd_verify},
      {"inspect", "FILE.h5", "per tensor codec, shape, bytes, bits per weight, SQNR; totals, "
       "compression and the manifest (exports) or the parameters (checkpoints)", cmd_inspect},
      {"infer", "MODEL.h5 [--input test|val|train|X.f32] [--limit N] [--fast] [--out PRED.csv] "
       "[--threads N]",
       "inference from an export: reference path (bit-exact) or --fast (fused packed kernels)",
       cmd_infer},
      {"sample", "MODEL.h5 --prompt TEXT [--tokens N] [--temperature T] [--seed S] [--top-k K] "
       "[--kv-cache none|mxfp8_e4m3|int8_sym] [--fast] [--threads N] | MODEL.h5 --eval-kv N "
       "[--kv-cache C] [--set k=v ...]",
       "generate text from a gpt export or checkpoint with a (quantizable) KV cache, tokens/s on "
       "stderr; --eval-kv: test bits per byte and cache bytes per token of each KV-cache setting",
       cmd_sample},
      {"quantize",
       "--codec NAME [--scale-rule floor|rceil] [--group-size G] [--global-amax A] --in INPUT "
       "--shape R,K --out OUT.h5 [--name NAME] [--dequant OUT.f32] [--allow-nonfinite]",
       "quantize one float32 tensor (INPUT: raw little-endian float32 or FILE.h5:/dataset) into "
       "a spec §9 HDF5 group; NaN/Inf inputs are refused unless --allow-nonfinite (NaN groups, "
       "spec §6 step 4)", cmd_quantize},
      {"dequantize", "OUT.h5 [--name NAME] --out X.f32",
       "decode a spec §9 group (default name 'tensor') to raw little-endian float32",
       cmd_dequantize},
      {"seal", "FILE.h5 [--out NEW.h5]",
       "convert a checkpoint, export or quantize output written before the integrity block: "
       "validated in a separate process, rewritten sealed (in place unless --out)", cmd_seal},
  };
  return kCommands;
}

void print_help(std::ostream& os) {
  os << "mxqat " << mxqat_version()
     << " - quantization-aware training in the OCP MX formats (FP8/FP6/FP4), NVFP4 and INT\n\n"
     << "usage: mxqat COMMAND [ARGS]\n\ncommands:\n";
  for (const auto& c : commands())
    os << "  " << c.name << " " << c.usage << "\n      " << c.summary << "\n";
  os << "\n  mxqat COMMAND --help   more about one command\n  mxqat --version\n";
}

// A command's error: printed, then with several processes the job is ended (no peer left waiting).
int fail(const std::string& what) {
  Dist& d = dist();
  std::cerr << (d.size() > 1 ? "rank " + std::to_string(d.rank()) + ": " : std::string()) << what << "\n";
  if (d.size() > 1) d.abort(1);
  return 1;
}

// Under mpirun the data-parallel commands only: any other would do its work N times over.
bool data_parallel(const std::string& command) {
  return command == "train" || command == "qat" || command == "ptq" || command == "run";
}

int dispatch(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  if (args.empty() || args[0] == "--help" || args[0] == "-h" || args[0] == "help") {
    print_help(std::cout);
    return args.empty() ? 2 : 0;
  }
  if (args[0] == "--version") {
    std::cout << "mxqat " << mxqat_version() << "\n";
    return 0;
  }
  std::vector<std::string> names;
  for (const auto& c : commands()) names.push_back(c.name);
  for (const auto& c : commands()) {
    if (args[0] != c.name) continue;
    std::vector<std::string> rest(args.begin() + 1, args.end());
    if (!rest.empty() && (rest[0] == "--help" || rest[0] == "-h")) {
      std::cout << "usage: mxqat " << c.name << " " << c.usage << "\n  " << c.summary << "\n";
      return 0;
    }
    if (dist().size() > 1 && !data_parallel(c.name))
      return fail(std::string("mxqat ") + c.name + ": error: runs as one process; under mpirun "
                  "only train, qat, ptq and run work data-parallel: start it without mpirun");
    try {
      return c.run(rest);
    } catch (const Error& e) {
      return fail(std::string("mxqat ") + c.name + ": error: " + e.what());
    } catch (const std::exception& e) {
      return fail(std::string("mxqat ") + c.name + ": unexpected error: " + e.what());
    }
  }
  std::cerr << "mxqat: unknown command '" << args[0] << "' (did you mean '"
            << nearest(args[0], names) << "'? see 'mxqat --help')\n";
  return 2;
}

}  // namespace

int cli_main(int argc, char** argv) {
  tune_allocator();
  try {
    dist_init(&argc, &argv);
  } catch (const Error& e) {
    std::cerr << "mxqat: error: " << e.what() << "\n";
    return 1;
  }
  if (!is_root()) spdlog::set_level(spdlog::level::err);  // rank 0 logs for the job
  const int rc = dispatch(argc, argv);
  if (rc == 0) dist_finalize();
  else if (dist().size() > 1) dist().abort(rc);
  return rc;
}

}  // namespace mxqat::trainers
