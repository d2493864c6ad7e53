// SVG chart drawing: one 900x320 panel per chart, axes with 5 ticks, a legend on top.
#include "trainers/report/report_svg.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

namespace mxqat::trainers::svg {

namespace {
constexpr double kW = 900, kH = 320, kLeft = 60, kRight = 20, kTop = 50, kBottom = 60;
const char* kColors[] = {"#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1", "#9c755f"};

std::string f(double v) {
  char b[32];
  std::snprintf(b, sizeof b, "%.1f", v);
  return b;
}
std::string label(double v) {
  char b[32];
  std::snprintf(b, sizeof b, std::abs(v) >= 100 ? "%.0f" : std::abs(v) >= 1 ? "%.2f" : "%.3f", v);
  return b;
}

struct Frame {
  double lo, hi, xlo, xhi;
  double y(double v) const { return kTop + (kH - kTop - kBottom) * (1 - (v - lo) / (hi - lo)); }
  double x(double v) const { return kLeft + (kW - kLeft - kRight) * (v - xlo) / (xhi - xlo); }
};

void pad(double& lo, double& hi) {
  if (!(hi > lo)) lo -= 0.5, hi += 0.5;
  const double m = 0.08 * (hi - lo);
  lo -= m, hi += m;
}

std::string open(const std::string& title, const std::vector<std::string>& names, const Frame& fr) {
  std::string s = "<h2>" + escape(title) + "</h2><svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" +
                  f(kW) + "\" height=\"" + f(kH) + "\" font-size=\"11\">";
  for (size_t i = 0; i < names.size(); ++i)
    s += "<rect x=\"" + f(kLeft + 130 * double(i)) + "\" y=\"10\" width=\"12\" height=\"12\" fill=\"" +
         kColors[i % 8] + "\"/><text x=\"" + f(kLeft + 16 + 130 * double(i)) + "\" y=\"20\">" +
         escape(names[i]) + "</text>";
  for (int t = 0; t <= 4; ++t) {
    const double v = fr.lo + (fr.hi - fr.lo) * t / 4;
    s += "<line x1=\"" + f(kLeft) + "\" x2=\"" + f(kW - kRight) + "\" y1=\"" + f(fr.y(v)) + "\" y2=\"" +
         f(fr.y(v)) + "\" stroke=\"#ddd\"/><text x=\"" + f(kLeft - 5) + "\" y=\"" + f(fr.y(v) + 4) +
         "\" text-anchor=\"end\">" + label(v) + "</text>";
  }
  return s;
}
}  // namespace

std::string escape(const std::string& s) {
  std::string o;
  for (char c : s) {
    if (c == '<') o += "&lt;";
    else if (c == '>') o += "&gt;";
    else if (c == '&') o += "&amp;";
    else if (c == '"') o += "&quot;";
    else o += c;
  }
  return o;
}

std::string bars(const std::string& title, const std::vector<std::string>& categories,
                 const std::vector<std::string>& series, const std::vector<std::vector<double>>& values,
                 double reference) {
  double lo = INFINITY, hi = -INFINITY;
  for (const auto& row : values)
    for (double v : row)
      if (std::isfinite(v)) lo = std::min(lo, v), hi = std::max(hi, v);
  if (std::isfinite(reference)) lo = std::min(lo, reference), hi = std::max(hi, reference);
  if (!std::isfinite(lo)) return "<h2>" + escape(title) + "</h2><p>no data</p>";
  pad(lo, hi);
  const Frame fr{lo, hi, 0, 1};
  std::string s = open(title, series, fr);
  const double gw = (kW - kLeft - kRight) / double(std::max<size_t>(1, categories.size()));
  const double bw = 0.8 * gw / double(std::max<size_t>(1, series.size()));
  for (size_t c = 0; c < categories.size(); ++c) {
    const double x0 = kLeft + gw * double(c) + 0.1 * gw;
    for (size_t k = 0; k < series.size() && k < values[c].size(); ++k) {
      const double v = values[c][k];
      if (!std::isfinite(v)) continue;
      const double top = fr.y(v), bottom = kH - kBottom;
      s += "<rect x=\"" + f(x0 + bw * double(k)) + "\" y=\"" + f(top) + "\" width=\"" + f(bw - 2) +
           "\" height=\"" + f(std::max(0.0, bottom - top)) + "\" fill=\"" + kColors[k % 8] +
           "\"><title>" + escape(categories[c] + " " + series[k] + ": " + label(v)) + "</title></rect>";
    }
    s += "<text x=\"" + f(x0 + 0.4 * gw) + "\" y=\"" + f(kH - kBottom + 16) + "\" text-anchor=\"middle\">" +
         escape(categories[c]) + "</text>";
  }
  if (std::isfinite(reference))
    s += "<line x1=\"" + f(kLeft) + "\" x2=\"" + f(kW - kRight) + "\" y1=\"" + f(fr.y(reference)) + "\" y2=\"" +
         f(fr.y(reference)) + "\" stroke=\"#000\" stroke-dasharray=\"6,4\"/>";
  return s + "</svg>";
}

std::string lines(const std::string& title, const std::vector<Series>& series,
                  const std::vector<Marker>& markers) {
  double lo = INFINITY, hi = -INFINITY, xlo = INFINITY, xhi = -INFINITY;
  std::vector<std::string> names;
  for (const auto& se : series) {
    names.push_back(se.name);
    for (auto [x, y] : se.points)
      if (std::isfinite(y)) lo = std::min(lo, y), hi = std::max(hi, y), xlo = std::min(xlo, x), xhi = std::max(xhi, x);
  }
  if (!std::isfinite(lo)) return "<h2>" + escape(title) + "</h2><p>no data</p>";
  pad(lo, hi);
  xlo = std::min(xlo, 0.0);
  if (!(xhi > xlo)) xhi = xlo + 1;
  const Frame fr{lo, hi, xlo, xhi};
  std::string s = open(title, names, fr);
  for (size_t k = 0; k < series.size(); ++k) {
    std::string pts;
    for (auto [x, y] : series[k].points) pts += f(fr.x(x)) + "," + f(fr.y(y)) + " ";
    s += "<polyline fill=\"none\" stroke-width=\"1.5\" stroke=\"" + std::string(kColors[k % 8]) +
         "\" points=\"" + pts + "\"/>";
  }
  for (const auto& m : markers)
    s += "<line x1=\"" + f(fr.x(m.x)) + "\" x2=\"" + f(fr.x(m.x)) + "\" y1=\"" + f(kTop) + "\" y2=\"" +
         f(kH - kBottom) + "\" stroke=\"#888\" stroke-dasharray=\"3,3\"/><text x=\"" + f(fr.x(m.x) + 3) +
         "\" y=\"" + f(kTop + 10) + "\">" + escape(m.label) + "</text>";
  for (int t = 0; t <= 4; ++t) {
    const double v = xlo + (xhi - xlo) * t / 4;
    s += "<text x=\"" + f(fr.x(v)) + "\" y=\"" + f(kH - kBottom + 16) + "\" text-anchor=\"middle\">" +
         label(v) + "</text>";
  }
  return s + "<text x=\"" + f(kW / 2) + "\" y=\"" + f(kH - 20) + "\" text-anchor=\"middle\">step</text></svg>";
}

}  // namespace mxqat::trainers::svg
