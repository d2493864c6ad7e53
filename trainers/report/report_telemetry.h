// The QAT telemetry of a run, read back from the qat stage's metrics.jsonl for the report: each
// monitored tensor's SQNR, code-flip rate, saturated and flushed shares and E8M0 scale-exponent
// histogram at every monitor step, and the warnings with their step and tensor (those the run
// recorded; for files written before warnings were recorded, the monitor's own anomaly check
// re-run on the recorded statistics with the recipe's threshold, which gives the same messages).
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace mxqat::trainers {

struct TelemetryPoint {
  int64_t step = 0;
  std::string codec;
  double sqnr_db = 0, flips = 0, saturated = 0, flushed = 0;  // flips NaN: first report
  int64_t zero_blocks = 0, nonfinite = 0;
  std::map<int, int64_t> scale_exponents;  // E8M0 exponent -> blocks (empty for non-MX codecs)
};

struct TensorTrace {
  std::string name;  // "fc1.weight", "blocks.0.attn.q.input", ...
  std::vector<TelemetryPoint> points;  // by step
};

struct TelemetryWarning {
  std::string variant;  // the QAT run (e.g. "mxfp4_progressive")
  int64_t step = 0;
  std::string tensor;   // "" for a skipped step (NaN/Inf loss or gradient)
  std::string message;
};

struct Telemetry {
  std::vector<int64_t> steps;        // the monitor steps, ascending
  std::vector<TensorTrace> tensors;  // in the order the run recorded them
};

// The telemetry of one QAT run directory (its metrics.jsonl); empty when it has none.
Telemetry read_telemetry(const std::string& qat_dir);
// The warnings of one QAT run directory, in file order, each tagged with `variant`. The SQNR
// threshold of the re-run check comes from the run's recipe.yaml (qat.sqnr_warn_db).
std::vector<TelemetryWarning> read_warnings(const std::string& qat_dir, const std::string& variant);

}  // namespace mxqat::trainers
