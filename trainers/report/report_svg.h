// Inline SVG charts for report.html: grouped bars and line plots with vertical markers. Plain
// strings out, no scripts, no external resources.
#pragma once
#include <string>
#include <utility>
#include <vector>

namespace mxqat::trainers::svg {

struct Series {
  std::string name;
  std::vector<std::pair<double, double>> points;  // (x, y)
};
struct Marker {
  double x;
  std::string label;
};

std::string escape(const std::string& s);  // for HTML text and attributes
// One group per category, one bar per series; values[category][series], NaN = no bar.
// reference: a dashed horizontal line (NaN = none). The y axis spans the data (not from zero).
std::string bars(const std::string& title, const std::vector<std::string>& categories,
                 const std::vector<std::string>& series, const std::vector<std::vector<double>>& values,
                 double reference);
std::string lines(const std::string& title, const std::vector<Series>& series,
                  const std::vector<Marker>& markers);

}  // namespace mxqat::trainers::svg
