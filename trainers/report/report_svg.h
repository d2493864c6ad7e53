// Inline SVG charts for report.html: grouped bars (vertical or horizontal), line plots with
// vertical markers, and heatmaps. Plain strings out, no scripts, no external resources.
// Every chart is laid out to be read: "nice" axis ticks whose labels are distinct, legends that
// wrap instead of overlapping, and series told apart without colour (dash patterns and point
// markers for lines, hatch patterns for bars, a one-hue ramp of falling lightness for heatmaps).
// The elements carry classes (chart, tick-x, tick-y, axis-title, legend-item) that the browser
// test of the report checks.
#pragma once
#include <cmath>
#include <string>
#include <utility>
#include <vector>

namespace mxqat::trainers::svg {

constexpr double kChartWidth = 1040;  // px; the report's column is 1100 px wide
constexpr double kFontPx = 12;

std::string escape(const std::string& s);  // for HTML text and attributes

// Axis ticks at multiples of a "nice" step (1, 2 or 5 times a power of ten) from `lo` up to
// `hi`, about `target` of them. The axis spans [first, last] tick, which covers [lo, hi]. Labels
// carry as many decimals as the step needs, so neighbouring labels always differ; large or tiny
// magnitudes use an exponent ("1.5e+06"). lo == hi gets an axis around the value (+-5%, +-0.5 at
// zero); a non-finite bound gets [0, 1].
struct Ticks {
  double lo = 0, hi = 1, step = 1;
  std::vector<double> values;
  std::vector<std::string> labels;
};
Ticks nice_ticks(double lo, double hi, int target = 5);

// A conservative estimate of the rendered width of `s` (sans-serif at font_px): 0.62 em per
// character, 0.36 em for narrow glyphs, so a layout made with it does not overlap in a browser.
double text_width(const std::string& s, double font_px = kFontPx);

struct Box {
  double x = 0, y = 0, w = 0, h = 0;
};
bool overlap(const Box& a, const Box& b);  // interiors intersect (touching edges do not)

// Legend entries (swatch + name) left to right from (x0, y0), starting a new row whenever the
// next entry would pass x0 + width; an entry wider than a row gets a row of its own. Returns one
// box per name; the legend's height is the last box's bottom minus y0.
std::vector<Box> legend_layout(const std::vector<std::string>& names, double x0, double y0,
                               double width, double font_px = kFontPx);

struct Series {
  std::string name;
  std::vector<std::pair<double, double>> points;  // (x, y); non-finite y leaves a gap
};
struct Marker {
  double x;
  std::string label;
};

struct BarOptions {
  std::string value_title;          // the value axis' title
  double reference = NAN;           // a dashed line across the bars (NaN = none) ...
  std::string reference_label;      // ... named in the legend
  bool from_zero = false;           // value axis from 0 (counts); else it spans the data
  bool horizontal = false;          // categories down the left side (long names, many of them)
  std::string category_title;
};
// One group per category, one bar per series; values[category][series], NaN = no bar.
std::string bars(const std::string& id, const std::vector<std::string>& categories,
                 const std::vector<std::string>& series, const std::vector<std::vector<double>>& values,
                 const BarOptions& o);

// Lines with a point marker every few points; markers: dotted verticals labelled at the top
// (labels that would collide move down a row).
std::string lines(const std::string& id, const std::vector<Series>& series,
                  const std::vector<Marker>& markers, const std::string& x_title,
                  const std::string& y_title);

// rows x columns of cells, values[row][col] (NaN: a hatched "no value" cell); darker = higher
// when dark_high, else darker = lower. Values are printed in the cells where they fit, with
// `digits` decimals; a scale bar with nice ticks explains the shades.
std::string heatmap(const std::string& id, const std::vector<std::string>& rows,
                    const std::vector<std::string>& columns,
                    const std::vector<std::vector<double>>& values, const std::string& column_title,
                    const std::string& value_title, bool dark_high, int digits);

}  // namespace mxqat::trainers::svg
