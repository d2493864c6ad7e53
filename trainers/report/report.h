// The comparison report of a run directory (`mxqat compare`, last stage of `mxqat run`):
// report.md, report.csv, report.json and a self-contained report.html (inline SVG, no network)
// with the table baseline / PTQ methods / QAT direct / QAT progressive per format (metric, delta,
// share of the RTN gap recovered, bytes), per-layer SQNR, loss curves with the schedule's phase
// changes, the 2x2 train/infer alignment matrix, the QAT telemetry (SQNR and code flips per layer
// over the steps, the scale exponents of the worst tensor) with the warnings, and for a gpt the
// samples and the KV-cache table (DIR/sample/, trainers/stages/sample_stage.h). Every table of report.md is an
// HTML table of report.html. Reads only the stages' files.
#pragma once
#include <string>

namespace mxqat::trainers {

// Collects RUN_DIR's results and writes OUT_DIR/report.{md,csv,json,html} (each atomically).
// Throws naming the first stage whose files are missing ("run 'mxqat run RECIPE' first").
// Returns the path of report.md.
std::string write_report(const std::string& run_dir, const std::string& out_dir);

}  // namespace mxqat::trainers
