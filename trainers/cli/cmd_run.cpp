// `mxqat ptq`, `mxqat compare` and `mxqat run`.
#include <omp.h>
#include <spdlog/spdlog.h>

#include <filesystem>
#include <iostream>

#include "autograd/error.h"
#include "trainers/cli/cli_args.h"
#include "trainers/cli/commands.h"
#include "trainers/dist/dist.h"
#include "trainers/report/report.h"
#include "trainers/stages/ptq_stage.h"
#include "trainers/stages/run.h"
#include "trainers/stages/sample_stage.h"

namespace mxqat::trainers {


int cmd_ptq(const std::vector<std::string>& argv) {
  Args a("ptq", argv, {{"--from", true}, {"--out", true}, {"--set", true, true}, {"--threads", true}}, 1, 1);
  apply_threads(a);
  const Recipe r = load_recipe(a.positional()[0], a.all("--set"));
  PtqOptions o;
  o.out_dir = a.get_or("--out", "runs/" + r.name + "/ptq");
  o.from = a.get_or("--from", "runs/" + r.name + "/baseline/checkpoint.h5");
  MXQAT_CHECK(std::filesystem::exists(o.from), "ptq: no baseline checkpoint at ", o.from,
              "; train one with 'mxqat train RECIPE' or pass --from BASELINE.h5");
  install_peer_failure_handler();  // under mpirun: a peer that dies stops every process (dist.h)
  const PtqSummary s = ptq(r, o);
  if (!is_root()) return 0;  // rank 0 reports for the job
  for (const auto& row : s.rows)
    std::cout << row.format << " " << row.method << " " << s.metric << " " << row.value << " bytes " << row.bytes << "\n";
  std::cout << "baseline " << s.baseline << " -> " << o.out_dir << "/summary.json\n";
  return 0;
}

int cmd_compare(const std::vector<std::string>& argv) {
  Args a("compare", argv, {{"--out", true}, {"--set", true, true}}, 1, 1);
  const std::string arg = a.positional()[0];
  std::string dir = arg;
  if (!std::filesystem::is_directory(arg)) dir = "runs/" + load_recipe(arg, a.all("--set")).name;
  const std::string out = a.get_or("--out", dir + "/report");
  // A finished gpt run gets its samples and KV-cache table here if it lacks them; models this
  // build cannot read leave the report without them, saying why.
  if (std::filesystem::exists(dir + "/export/alignment.json")) {
    try {
      write_gpt_samples(dir);
    } catch (const Error& e) {
      spdlog::warn("compare: the report goes without samples and KV-cache table: {}", e.what());
    }
  }
  std::cout << "report: " << write_report(dir, out) << " (and report.html, report.csv, report.json)\n";
  return 0;
}

int cmd_run(const std::vector<std::string>& argv) {
  Args a("run", argv,
         {{"--out", true}, {"--set", true, true}, {"--threads", true}, {"--stop-after", true}}, 1, 1);
  apply_threads(a);
  const Recipe r = load_recipe(a.positional()[0], a.all("--set"));
  RunOptions o;
  o.out_dir = a.get_or("--out", "runs/" + r.name);
  o.stop_after = a.get_or("--stop-after", "");
  if (!o.stop_after.empty()) {
    bool known = false;
    for (const char* s : kRunStages) known = known || o.stop_after == s;
    MXQAT_CHECK(known, "--stop-after takes a stage: baseline, ptq, qat, export, verify or report; got '",
                o.stop_after, "'");
  }
  spdlog::info("mxqat run {} -> {} ({} threads)", r.source, o.out_dir, omp_get_max_threads());
  if (!run_pipeline(r, o)) return o.stop_after.empty() ? 130 : 0;
  std::cout << "report: " << o.out_dir << "/report/report.md (also report.html, report.csv, report.json)\n";
  return 0;
}

}  // namespace mxqat::trainers
