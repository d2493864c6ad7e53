// Report: collect the stages' JSON files (report_collect.cpp), then render one data set four
// ways: report.md, report.csv and report.json here, report.html in report_page.cpp.
#include "trainers/report/report.h"

#include <sstream>

#include "trainers/report/report_data.h"
#include "trainers/report/report_page.h"
#include "trainers/report/report_tables.h"
#include "trainers/util/files.h"
#include "trainers/util/json_write.h"

namespace mxqat::trainers {

namespace {
using namespace report;

std::string markdown(const Report& r) {
  std::ostringstream o;
  o << "# mxqat report: " << r.recipe << "\n\n" << intro(r) << "\n\n" << md_table(results_table(r));
  o << "\n## Train/infer alignment (" << r.align.codec << ")\n\n";
  if (r.align.present) o << md_table(alignment_table(r)) << "\n" << alignment_note(r) << "\n";
  else o << "Not verified yet (the verify stage has not run).\n";
  o << "\n## Per-layer weight SQNR (dB) at the exported format\n\n" << md_table(sqnr_table(r));
  o << "\n## QAT schedule (" << r.main_variant << ")\n\n";
  for (const auto& m : r.phase_marks) o << "- step " << num(m.x, "%.0f") << ": " << m.label << "\n";
  if (!r.telemetry.tensors.empty())
    o << "\n## QAT telemetry (" << r.main_variant << ", step " << r.telemetry.steps.back() << ")\n\n"
      << md_table(telemetry_table(r));
  o << "\n## Warnings\n\n" << warnings_note(r) << "\n";
  if (!r.warnings.empty()) o << "\n" << md_table(warnings_table(r));
  if (is_gpt(r)) {
    o << "\n## Samples\n\nPrompt \"" << r.samples.at("prompt").string() << "\", seed "
      << int64_t(r.samples.at("seed").number()) << ", temperature " << num(r.samples.at("temperature").number(), "%g")
      << ", " << int64_t(r.samples.at("tokens").number()) << " bytes each.\n";
    for (const Json& s : r.samples.at("samples").array())
      o << "\n**" << s.at("model").string() << "**\n\n```\n" << r.samples.at("prompt").string() << s.at("text").string()
        << "\n```\n";
  }
  if (r.kv_cache.kind() == Json::Kind::kObject)
    o << "\n## KV cache\n\n" << kv_note(r) << "\n\n" << md_table(kv_table(r));
  return o.str();
}

std::string csv(const Report& r) {
  std::string o = "codec,method," + r.metric + ",delta,recovered,bytes\n";
  for (const Row& x : r.rows)
    o += x.codec + "," + x.method + "," + num(x.value, "%.6f") + "," +
         (x.method == "baseline" ? "" : num(x.value - r.baseline, "%.6f")) + "," +
         (std::isfinite(x.recovered) ? num(x.recovered, "%.6f") : "") + "," + std::to_string(x.bytes) + "\n";
  return o;
}

std::string json(const Report& r) {
  JsonArray rows;
  for (const Row& x : r.rows)
    rows.add(JsonObject().str("codec", x.codec).str("method", x.method).num("value", x.value)
                 .num("recovered", x.recovered).integer("bytes", x.bytes));
  JsonObject a;
  if (r.align.present) {
    a.integer("samples", r.align.samples).num("max_abs_diff", r.align.max_abs_diff)
        .boolean("bitwise_equal", r.align.bitwise_equal).str("codec", r.align.codec)
        .raw("matrix", JsonObject().num("fp32_fp32", r.align.cell[0][0]).num("fp32_codec", r.align.cell[0][1])
                           .num("qat_fp32", r.align.cell[1][0]).num("qat_codec", r.align.cell[1][1]).dump());
  }
  return JsonObject().str("recipe", r.recipe).str("metric", r.metric).num("baseline", r.baseline)
             .str("exported", r.main_variant).str("qat_loss", r.qat_loss).raw("rows", rows.dump_lines())
             .raw("alignment", r.align.present ? a.dump() : "null")
             .integer("warnings", int64_t(r.warnings.size())).dump() + "\n";
}
}  // namespace

std::string write_report(const std::string& run_dir, const std::string& out_dir) {
  const report::Report r = report::collect(run_dir);
  make_output_dir(out_dir, "report");
  write_file_atomic(out_dir + "/report.md", markdown(r));
  write_file_atomic(out_dir + "/report.csv", csv(r));
  write_file_atomic(out_dir + "/report.json", json(r));
  write_file_atomic(out_dir + "/report.html", report::page_html(r));
  return out_dir + "/report.md";
}

}  // namespace mxqat::trainers
