// The report's tables and notes, built once from a Report and rendered both as markdown
// (report.md, report.cpp) and as HTML (report.html, report_page.cpp). Internal to trainers/report.
#pragma once
#include <string>
#include <vector>

#include "trainers/report/report_data.h"
#include "trainers/report/report_html.h"

namespace mxqat::trainers::report {

// One table of the report, rendered both as markdown (report.md) and as HTML (report.html).
struct Table {
  std::string id;
  std::vector<html::Column> columns;
  std::vector<std::vector<std::string>> rows;
  std::vector<bool> best;
  size_t badge_column = 0;
};

std::string num(double v, const char* f = "%.4f");  // "-" when not finite
std::string pct(double v, const char* f = "%.1f");  // 100 v "%", "-" when not finite
bool higher_is_better(const Report& r);              // accuracy: yes; bits/byte, loss: no
bool is_gpt(const Report& r);                        // has generated samples
std::string md_table(const Table& t);
std::string html_table(const Table& t);

Table results_table(const Report& r);    // every method at every format, the best of each marked
Table alignment_table(const Report& r);  // the 2x2 train/infer matrix
Table sqnr_table(const Report& r);       // per-layer weight SQNR at the exported format
Table telemetry_table(const Report& r);  // each monitored tensor at the last monitor step
Table warnings_table(const Report& r);
Table kv_table(const Report& r);
std::string intro(const Report& r);
std::string alignment_note(const Report& r);
std::string warnings_note(const Report& r);
std::string kv_note(const Report& r);

}  // namespace mxqat::trainers::report
