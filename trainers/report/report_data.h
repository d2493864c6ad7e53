// The comparison report's data set: what `collect` gathers from a run directory's stage files
// (baseline, PTQ, QAT, SQNR, alignment, telemetry, samples). Rendered by report.cpp (markdown, CSV,
// JSON) and report_page.cpp (HTML) through the tables of report_tables.h. Internal to trainers/report.
#pragma once
#include <cmath>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "trainers/report/report_svg.h"
#include "trainers/report/report_telemetry.h"
#include "trainers/util/json_read.h"

namespace mxqat::trainers::report {

struct Row {
  std::string codec, method;
  double value = NAN, recovered = NAN;
  int64_t bytes = 0;
};

struct Alignment {
  bool present = false;
  int64_t samples = 0;
  double max_abs_diff = NAN;
  bool bitwise_equal = false;
  double cell[2][2] = {{NAN, NAN}, {NAN, NAN}};  // [trained fp32|qat][inferred fp32|codec]
  std::string codec;
};

struct Report {
  std::string metric = "test_accuracy";
  std::string recipe, main_variant, scale_rule;
  std::string qat_loss;  // what the QAT runs minimised (labels, or labels and a teacher)
  double baseline = NAN;
  int64_t baseline_bytes = 0, calib_samples = 0;
  std::vector<Row> rows;
  std::vector<std::string> sqnr_series;
  std::vector<std::pair<std::string, std::vector<double>>> sqnr;  // layer -> value per series
  std::vector<svg::Series> train_curve, qat_curves;
  std::vector<svg::Marker> phase_marks;
  Alignment align;
  Telemetry telemetry;                     // of the exported (main) QAT variant
  std::vector<TelemetryWarning> warnings;  // of every QAT variant
  Json samples, kv_cache;                  // gpt runs: DIR/sample/*.json (null when absent)
};

// Reads RUN_DIR's stage files; throws naming the first stage whose files are missing.
Report collect(const std::string& run_dir);

}  // namespace mxqat::trainers::report
