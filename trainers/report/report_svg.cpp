// SVG chart drawing: nice ticks, wrapped legends, styles that survive grey-scale printing.
#include "trainers/report/report_svg.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <set>

namespace mxqat::trainers::svg {

namespace {
constexpr int kStyles = 8;
// Okabe-Ito colours (distinct for the common colour-vision deficiencies); the dash patterns,
// markers and hatches below keep the series apart in grey scale too.
const char* const kColours[kStyles] = {"#0072b2", "#e69f00", "#009e73", "#cc79a7",
                                       "#56b4e9", "#d55e00", "#555555", "#000000"};
const char* const kDashes[kStyles] = {"", "8,3", "2,2", "10,3,2,3", "4,4", "14,4", "1,3", "6,2,2,2"};
constexpr double kTickPx = 11, kTitlePx = 12, kPlotH = 240, kRight = 16;
const char* const kReferenceStyle = "stroke=\"#000\" stroke-width=\"1.5\" stroke-dasharray=\"6,4\"";

std::string f(double v) {
  char b[32];
  std::snprintf(b, sizeof b, "%.1f", v);
  return b;
}

std::string attr(const char* name, double v) { return std::string(" ") + name + "=\"" + f(v) + "\""; }

std::string text(double x, double y, const std::string& s, const char* cls, const char* anchor,
                 double px = kTickPx, const std::string& extra = "") {
  return "<text class=\"" + std::string(cls) + "\"" + attr("x", x) + attr("y", y) +
         " text-anchor=\"" + anchor + "\" font-size=\"" + f(px) + "\"" + extra + ">" + escape(s) + "</text>";
}

std::string line(double x1, double y1, double x2, double y2, const std::string& style) {
  return "<line" + attr("x1", x1) + attr("y1", y1) + attr("x2", x2) + attr("y2", y2) + " " + style + "/>";
}

// Marker k's shape centred at (x, y), filled with the series colour, outlined in black.
std::string marker(int k, double x, double y) {
  const std::string c = kColours[k % kStyles], st = " fill=\"" + c + "\" stroke=\"#000\" stroke-width=\"0.6\"";
  const double r = 3.2;
  auto poly = [&](std::vector<std::pair<double, double>> p) {
    std::string s = "<polygon points=\"";
    for (auto [dx, dy] : p) s += f(x + dx) + "," + f(y + dy) + " ";
    return s + "\"" + st + "/>";
  };
  switch (k % kStyles) {
    case 0: return "<circle" + attr("cx", x) + attr("cy", y) + attr("r", r) + st + "/>";
    case 1: return "<rect" + attr("x", x - r) + attr("y", y - r) + attr("width", 2 * r) + attr("height", 2 * r) +
                   st + "/>";
    case 2: return poly({{0, -r - 0.8}, {r + 0.6, r}, {-r - 0.6, r}});
    case 3: return poly({{0, -r - 1}, {r + 1, 0}, {0, r + 1}, {-r - 1, 0}});
    case 4: return poly({{0, r + 0.8}, {r + 0.6, -r}, {-r - 0.6, -r}});
    case 5: return line(x - r, y - r, x + r, y + r, "stroke=\"" + c + "\" stroke-width=\"2\"") +
                   line(x - r, y + r, x + r, y - r, "stroke=\"" + c + "\" stroke-width=\"2\"");
    case 6: return "<circle" + attr("cx", x) + attr("cy", y) + attr("r", r) + " fill=\"#fff\" stroke=\"" + c +
                   "\" stroke-width=\"1.5\"/>";
    default: return "<rect" + attr("x", x - r) + attr("y", y - r) + attr("width", 2 * r) + attr("height", 2 * r) +
                    " fill=\"#fff\" stroke=\"" + c + "\" stroke-width=\"1.5\"/>";
  }
}

std::string line_style(int k) {
  std::string s = "stroke=\"" + std::string(kColours[k % kStyles]) + "\" stroke-width=\"1.8\" fill=\"none\"";
  if (*kDashes[k % kStyles]) s += " stroke-dasharray=\"" + std::string(kDashes[k % kStyles]) + "\"";
  return s;
}

// Hatch pattern k for bars: the series colour with white stripes, dots or a cross at angles
// that differ from series to series (k = 0: plain).
std::string bar_patterns(const std::string& id, size_t n) {
  std::string s = "<defs>";
  for (size_t k = 0; k < n; ++k) {
    const std::string c = kColours[k % kStyles], pid = id + "-p" + std::to_string(k);
    const int kind = int(k % kStyles);
    const char* rot[] = {"0", "45", "-45", "0", "90", "45", "0", "-45"};
    s += "<pattern id=\"" + pid + "\" patternUnits=\"userSpaceOnUse\" width=\"6\" height=\"6\"" +
         " patternTransform=\"rotate(" + rot[kind] + ")\"><rect width=\"6\" height=\"6\" fill=\"" + c + "\"/>";
    if (kind == 6) s += "<circle cx=\"3\" cy=\"3\" r=\"1.3\" fill=\"#fff\"/>";
    else if (kind == 5) s += line(0, 0, 0, 6, "stroke=\"#fff\" stroke-width=\"1.6\"") +
                             line(0, 3, 6, 3, "stroke=\"#fff\" stroke-width=\"1.6\"");
    else if (kind == 7) s += line(0, 0, 0, 6, "stroke=\"#000\" stroke-width=\"1.2\"");
    else if (kind > 0) s += line(0, 0, 0, 6, "stroke=\"#fff\" stroke-width=\"2\"");
    s += "</pattern>";
  }
  return s + "</defs>";
}

std::string bar_fill(const std::string& id, size_t k) { return "url(#" + id + "-p" + std::to_string(k) + ")"; }

enum class Swatch { kLine, kBar, kReference };

// The legend at (x0, y0), `width` wide; returns the markup and sets `height`.
std::string legend(const std::string& id, const std::vector<std::string>& names,
                   const std::vector<Swatch>& kinds, double x0, double y0, double width, double& height) {
  const std::vector<Box> boxes = legend_layout(names, x0, y0, width);
  std::string s;
  height = 0;
  for (size_t i = 0; i < names.size(); ++i) {
    const Box& b = boxes[i];
    const double cy = b.y + b.h / 2;
    s += "<g class=\"legend-item\">";
    if (kinds[i] == Swatch::kBar)
      s += "<rect" + attr("x", b.x) + attr("y", cy - 6) + " width=\"22\" height=\"12\" fill=\"" + bar_fill(id, i) +
           "\" stroke=\"#333\" stroke-width=\"0.6\"/>";
    else if (kinds[i] == Swatch::kReference)
      s += line(b.x, cy, b.x + 22, cy, kReferenceStyle);
    else
      s += line(b.x, cy, b.x + 22, cy, line_style(int(i))) + marker(int(i), b.x + 11, cy);
    s += text(b.x + 28, cy + kFontPx * 0.35, names[i], "legend-text", "start", kFontPx) + "</g>";
    height = std::max(height, b.y + b.h - y0);
  }
  return s;
}

std::string svg_open(const std::string& id, double h) {
  return "<svg class=\"chart\" id=\"" + escape(id) + "\" xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 " +
         f(kChartWidth) + " " + f(h) + "\" width=\"" + f(kChartWidth) + "\" height=\"" + f(h) +
         "\" font-family=\"sans-serif\">";
}

// Decimals that tell multiples of `step` apart.
int decimals_for(double step) { return std::max(0, int(-std::floor(std::log10(step) + 1e-9))); }

std::string no_data(const std::string& id) {
  return "<p class=\"no-data\" id=\"" + escape(id) + "\">no data</p>";
}

// x positions of the tick labels fit without touching (at least 8 px between labels).
bool labels_fit(const Ticks& t, double px_per_unit) {
  for (size_t i = 1; i < t.values.size(); ++i) {
    const double gap = (t.values[i] - t.values[i - 1]) * px_per_unit;
    if (gap < (text_width(t.labels[i - 1], kTickPx) + text_width(t.labels[i], kTickPx)) / 2 + 8) return false;
  }
  return true;
}

Ticks fitting_ticks(double lo, double hi, double px, int target) {
  Ticks t = nice_ticks(lo, hi, target);
  while (target > 2 && !labels_fit(t, px / (t.hi - t.lo))) t = nice_ticks(lo, hi, --target);
  return t;
}

// Colour of t in [0, 1] on a blue ramp whose lightness falls monotonically (grey-scale safe).
std::string ramp(double t) {
  static const double stops[5][3] = {{247, 251, 255}, {198, 219, 239}, {107, 174, 214}, {33, 113, 181}, {8, 48, 107}};
  t = std::clamp(t, 0.0, 1.0) * 4;
  const int i = std::min(3, int(t));
  const double u = t - i;
  char b[16];
  std::snprintf(b, sizeof b, "#%02x%02x%02x", int(std::lround(stops[i][0] + u * (stops[i + 1][0] - stops[i][0]))),
                int(std::lround(stops[i][1] + u * (stops[i + 1][1] - stops[i][1]))),
                int(std::lround(stops[i][2] + u * (stops[i + 1][2] - stops[i][2]))));
  return b;
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

Ticks nice_ticks(double lo, double hi, int target) {
  if (!std::isfinite(lo) || !std::isfinite(hi)) lo = 0, hi = 1;
  if (lo > hi) std::swap(lo, hi);
  if (!(hi > lo)) {
    const double half = lo == 0 ? 0.5 : std::abs(lo) * 0.05;
    lo -= half, hi += half;
  }
  target = std::max(2, target);
  const double raw = (hi - lo) / target;
  const double mag = std::pow(10.0, std::floor(std::log10(raw)));
  double step = mag;  // the nice step nearest to raw (in ratio): about `target` ticks
  for (double m : {2.0, 5.0, 10.0})
    if (std::abs(std::log(m * mag / raw)) < std::abs(std::log(step / raw))) step = m * mag;
  Ticks t;
  t.step = step;
  const double first = std::floor(lo / step + 1e-9), last = std::ceil(hi / step - 1e-9);
  t.lo = first * step, t.hi = last * step;
  const double big = std::max(std::abs(t.lo), std::abs(t.hi));
  const bool sci = big >= 1e6 || step < 1e-4;
  int digits = sci ? std::max(0, int(std::floor(std::log10(big))) - int(std::floor(std::log10(step))))
                   : decimals_for(step);
  for (double i = first; i <= last + 0.5; ++i) t.values.push_back(i * step == 0 ? 0.0 : i * step);
  // Labels from integer multiples of the step: they differ by construction, and the loop below
  // only ever adds a digit should rounding still make two equal.
  for (;; ++digits) {
    t.labels.clear();
    for (double v : t.values) {
      char b[48];
      std::snprintf(b, sizeof b, sci ? "%.*e" : "%.*f", digits, v);
      t.labels.push_back(b);
    }
    if (std::set<std::string>(t.labels.begin(), t.labels.end()).size() == t.labels.size() || digits > 15) break;
  }
  return t;
}

double text_width(const std::string& s, double font_px) {
  double em = 0;
  for (unsigned char c : s) em += (c == 'i' || c == 'l' || c == 'j' || c == 't' || c == 'f' || c == 'r' ||
                                   c == '.' || c == ',' || c == ':' || c == ';' || c == '|' || c == '\'' ||
                                   c == ' ' || c == '(' || c == ')' || c == '[' || c == ']' || c == '!')
                                      ? 0.36 : c == 'm' || c == 'w' || c == 'M' || c == 'W' ? 0.92 : 0.62;
  return em * font_px;
}

bool overlap(const Box& a, const Box& b) {
  return a.x < b.x + b.w && b.x < a.x + a.w && a.y < b.y + b.h && b.y < a.y + a.h;
}

std::vector<Box> legend_layout(const std::vector<std::string>& names, double x0, double y0, double width,
                               double font_px) {
  const double row_h = font_px + 8, gap = 18;
  std::vector<Box> out;
  double x = x0, y = y0;
  for (const auto& n : names) {
    const double w = 28 + text_width(n, font_px);
    if (x > x0 && x + w > x0 + width) x = x0, y += row_h;
    out.push_back({x, y, w, row_h});
    x += w + gap;
  }
  return out;
}

std::string bars(const std::string& id, const std::vector<std::string>& categories,
                 const std::vector<std::string>& series, const std::vector<std::vector<double>>& values,
                 const BarOptions& o) {
  double lo = INFINITY, hi = -INFINITY;
  for (const auto& row : values)
    for (double v : row)
      if (std::isfinite(v)) lo = std::min(lo, v), hi = std::max(hi, v);
  if (std::isfinite(o.reference)) lo = std::min(lo, o.reference), hi = std::max(hi, o.reference);
  if (!std::isfinite(lo) || categories.empty() || series.empty()) return no_data(id);
  if (o.from_zero) lo = std::min(lo, 0.0), hi = std::max(hi, 0.0);
  else lo -= 0.12 * std::max(hi - lo, 1e-12 + 1e-3 * std::abs(lo));  // the smallest bar still shows
  std::vector<std::string> names = series;
  std::vector<Swatch> kinds(series.size(), Swatch::kBar);
  if (std::isfinite(o.reference)) names.push_back(o.reference_label), kinds.push_back(Swatch::kReference);
  const size_t n = series.size();
  double cat_w = 0;
  for (const auto& c : categories) cat_w = std::max(cat_w, text_width(c, kTickPx));

  double legend_h = 0;
  std::string body;
  if (!o.horizontal) {
    const Ticks probe = nice_ticks(lo, hi, 5);
    double tick_w = 0;
    for (const auto& l : probe.labels) tick_w = std::max(tick_w, text_width(l, kTickPx));
    const double left = tick_w + 34, plot_w = kChartWidth - left - kRight;
    const std::string leg = legend(id, names, kinds, left, 6, plot_w, legend_h);
    const double top = legend_h + 18, gw = plot_w / double(categories.size());
    const bool rotate = cat_w > gw - 6;
    // Rotated labels need 16 px between neighbours (45 degrees: 11 px apart across the text);
    // narrower groups get every k-th label (each bar still names its category in its tooltip).
    const size_t every = rotate ? size_t(std::ceil(16 / gw)) : 1;
    const double bottom_labels = rotate ? cat_w * 0.72 + 20 : 22;
    const double h = top + kPlotH + bottom_labels + 24;
    const Ticks t = fitting_ticks(lo, hi, kPlotH, 6);
    auto Y = [&](double v) { return top + kPlotH * (1 - (v - t.lo) / (t.hi - t.lo)); };
    body = svg_open(id, h) + bar_patterns(id, n) + leg;
    for (size_t i = 0; i < t.values.size(); ++i)
      body += line(left, Y(t.values[i]), left + plot_w, Y(t.values[i]), "stroke=\"#ddd\"") +
              text(left - 6, Y(t.values[i]) + 4, t.labels[i], "tick-y", "end");
    const double bw = 0.8 * gw / double(n), base = Y(o.from_zero ? 0.0 : t.lo);
    for (size_t c = 0; c < categories.size(); ++c) {
      const double x0 = left + gw * double(c) + 0.1 * gw;
      for (size_t k = 0; k < n && k < values[c].size(); ++k) {
        const double v = values[c][k];
        if (!std::isfinite(v)) continue;
        const double y = Y(v);
        body += "<rect" + attr("x", x0 + bw * double(k)) + attr("y", std::min(y, base)) +
                attr("width", std::max(1.0, bw - 2)) + attr("height", std::abs(base - y)) + " fill=\"" +
                bar_fill(id, k) + "\" stroke=\"#333\" stroke-width=\"0.6\"><title>" +
                escape(categories[c] + ", " + series[k] + ": ") + std::to_string(v) + "</title></rect>";
      }
      const double cx = left + gw * (double(c) + 0.5), ly = top + kPlotH + 15;
      if (c % every) continue;
      body += rotate ? text(cx, ly, categories[c], "tick-x", "end", kTickPx,
                            " transform=\"rotate(-45 " + f(cx) + " " + f(ly) + ")\"")
                     : text(cx, ly, categories[c], "tick-x", "middle");
    }
    body += line(left, top + kPlotH, left + plot_w, top + kPlotH, "stroke=\"#333\"");
    if (std::isfinite(o.reference))
      body += line(left, Y(o.reference), left + plot_w, Y(o.reference), kReferenceStyle);
    body += text(14, top + kPlotH / 2, o.value_title, "axis-title", "middle", kTitlePx,
                 " transform=\"rotate(-90 14 " + f(top + kPlotH / 2) + ")\"");
    if (!o.category_title.empty())
      body += text(left + plot_w / 2, h - 6, o.category_title, "axis-title", "middle", kTitlePx);
    return body + "</svg>";
  }
  // Horizontal: one band per category, the value axis along the bottom.
  const double left = cat_w + 16, plot_w = kChartWidth - left - kRight - 24;
  const std::string leg = legend(id, names, kinds, left, 6, plot_w, legend_h);
  const double bar_h = n > 3 ? 7 : 10, band = bar_h * double(n) + 8;
  const double top = legend_h + 14, plot_h = band * double(categories.size());
  const double h = top + plot_h + 22 + 26;
  const Ticks t = fitting_ticks(lo, hi, plot_w, 8);
  auto X = [&](double v) { return left + plot_w * (v - t.lo) / (t.hi - t.lo); };
  body = svg_open(id, h) + bar_patterns(id, n) + leg;
  for (size_t i = 0; i < t.values.size(); ++i)
    body += line(X(t.values[i]), top, X(t.values[i]), top + plot_h, "stroke=\"#ddd\"") +
            text(X(t.values[i]), top + plot_h + 15, t.labels[i], "tick-x", "middle");
  const double base = X(o.from_zero ? 0.0 : t.lo);
  for (size_t c = 0; c < categories.size(); ++c) {
    const double y0 = top + band * double(c) + 4;
    for (size_t k = 0; k < n && k < values[c].size(); ++k) {
      const double v = values[c][k];
      if (!std::isfinite(v)) continue;
      body += "<rect" + attr("x", std::min(base, X(v))) + attr("y", y0 + bar_h * double(k)) +
              attr("width", std::abs(X(v) - base)) + attr("height", bar_h - 1) + " fill=\"" + bar_fill(id, k) +
              "\" stroke=\"#333\" stroke-width=\"0.5\"><title>" + escape(categories[c] + ", " + series[k] + ": ") +
              std::to_string(v) + "</title></rect>";
    }
    body += text(left - 6, y0 + band / 2, categories[c], "tick-y", "end");
    if (c > 0) body += line(left, y0 - 4, left + plot_w, y0 - 4, "stroke=\"#eee\"");
  }
  body += line(left, top, left, top + plot_h, "stroke=\"#333\"");
  if (std::isfinite(o.reference))
    body += line(X(o.reference), top, X(o.reference), top + plot_h, kReferenceStyle);
  body += text(left + plot_w / 2, h - 6, o.value_title, "axis-title", "middle", kTitlePx);
  return body + "</svg>";
}

std::string lines(const std::string& id, const std::vector<Series>& series, const std::vector<Marker>& markers,
                  const std::string& x_title, const std::string& y_title) {
  double lo = INFINITY, hi = -INFINITY, xlo = INFINITY, xhi = -INFINITY;
  std::vector<std::string> names;
  for (const auto& se : series) {
    names.push_back(se.name);
    for (auto [x, y] : se.points)
      if (std::isfinite(y) && std::isfinite(x))
        lo = std::min(lo, y), hi = std::max(hi, y), xlo = std::min(xlo, x), xhi = std::max(xhi, x);
  }
  if (!std::isfinite(lo)) return no_data(id);
  xlo = std::min(xlo, 0.0);
  const Ticks probe = nice_ticks(lo, hi, 5);
  double tick_w = 0;
  for (const auto& l : probe.labels) tick_w = std::max(tick_w, text_width(l, kTickPx));
  const double left = tick_w + 34, plot_w = kChartWidth - left - kRight;
  double legend_h = 0;
  const std::string leg =
      legend(id, names, std::vector<Swatch>(names.size(), Swatch::kLine), left, 6, plot_w, legend_h);
  const Ticks tx = fitting_ticks(xlo, xhi, plot_w, 10);
  auto X = [&](double v) { return left + plot_w * (v - tx.lo) / (tx.hi - tx.lo); };
  // Marker labels in rows above the plot: a label that would touch the previous one in its row
  // goes down a row.
  std::vector<Box> placed;
  std::vector<int> row_of;
  int rows = 0;
  for (const auto& m : markers) {
    Box b{X(m.x) + 3, 0, text_width(m.label, kTickPx), 14};
    int r = 0;
    for (;; ++r) {
      b.y = 14.0 * r;
      bool clash = false;
      for (const Box& p : placed) clash = clash || overlap(b, Box{p.x - 4, p.y, p.w + 8, p.h});
      if (!clash) break;
    }
    placed.push_back(b);
    row_of.push_back(r);
    rows = std::max(rows, r + 1);
  }
  const double top = legend_h + 16 + 14.0 * rows, h = top + kPlotH + 22 + 26;
  const Ticks ty = fitting_ticks(lo, hi, kPlotH, 6);
  auto Y = [&](double v) { return top + kPlotH * (1 - (v - ty.lo) / (ty.hi - ty.lo)); };
  std::string s = svg_open(id, h) + leg;
  for (size_t i = 0; i < ty.values.size(); ++i)
    s += line(left, Y(ty.values[i]), left + plot_w, Y(ty.values[i]), "stroke=\"#ddd\"") +
         text(left - 6, Y(ty.values[i]) + 4, ty.labels[i], "tick-y", "end");
  for (size_t i = 0; i < tx.values.size(); ++i)
    s += line(X(tx.values[i]), top + kPlotH, X(tx.values[i]), top + kPlotH + 4, "stroke=\"#333\"") +
         text(X(tx.values[i]), top + kPlotH + 16, tx.labels[i], "tick-x", "middle");
  s += line(left, top + kPlotH, left + plot_w, top + kPlotH, "stroke=\"#333\"") +
       line(left, top, left, top + kPlotH, "stroke=\"#333\"");
  for (size_t i = 0; i < markers.size(); ++i) {
    const double x = X(markers[i].x);
    s += line(x, top - 14.0 * (rows - row_of[i]) + 4, x, top + kPlotH, "stroke=\"#888\" stroke-dasharray=\"3,3\"") +
         text(x + 3, top - 14.0 * (rows - row_of[i]) + 14, markers[i].label, "marker-label", "start");
  }
  for (size_t k = 0; k < series.size(); ++k) {
    const auto& p = series[k].points;
    std::string pts;
    auto flush = [&] {
      if (!pts.empty()) s += "<polyline " + line_style(int(k)) + " points=\"" + pts + "\"/>";
      pts.clear();
    };
    for (auto [x, y] : p) {
      if (!std::isfinite(y) || !std::isfinite(x)) {
        flush();
        continue;
      }
      pts += f(X(x)) + "," + f(Y(y)) + " ";
    }
    flush();
    // About eight markers per series, staggered so that series sharing x values keep theirs apart.
    const size_t stride = std::max<size_t>(1, p.size() / 8), offset = (k * std::max<size_t>(1, stride / 3)) % stride;
    for (size_t i = offset; i < p.size(); i += stride)
      if (std::isfinite(p[i].second)) s += marker(int(k), X(p[i].first), Y(p[i].second));
  }
  s += text(14, top + kPlotH / 2, y_title, "axis-title", "middle", kTitlePx,
            " transform=\"rotate(-90 14 " + f(top + kPlotH / 2) + ")\"") +
       text(left + plot_w / 2, h - 6, x_title, "axis-title", "middle", kTitlePx);
  return s + "</svg>";
}

std::string heatmap(const std::string& id, const std::vector<std::string>& rows,
                    const std::vector<std::string>& columns, const std::vector<std::vector<double>>& values,
                    const std::string& column_title, const std::string& value_title, bool dark_high, int digits) {
  double lo = INFINITY, hi = -INFINITY;
  for (const auto& r : values)
    for (double v : r)
      if (std::isfinite(v)) lo = std::min(lo, v), hi = std::max(hi, v);
  if (!std::isfinite(lo) || rows.empty() || columns.empty()) return no_data(id);
  double row_w = 0;
  for (const auto& r : rows) row_w = std::max(row_w, text_width(r, kTickPx));
  const double left = row_w + 14, plot_w = kChartWidth - left - kRight;
  const double cell_w = plot_w / double(columns.size()), cell_h = rows.size() > 40 ? 13 : 16;
  // The scale: a gradient bar with nice ticks, above the cells.
  const Ticks t = fitting_ticks(lo, hi, 260, 5);
  const double top = 58, plot_h = cell_h * double(rows.size()), h = top + plot_h + 22 + 26;
  auto shade = [&](double v) {
    const double u = (v - t.lo) / (t.hi - t.lo);
    return dark_high ? u : 1 - u;
  };
  std::string s = svg_open(id, h) + "<defs><linearGradient id=\"" + id + "-g\">";
  for (int i = 0; i <= 8; ++i)
    s += "<stop offset=\"" + f(12.5 * i) + "%\" stop-color=\"" + ramp(dark_high ? i / 8.0 : 1 - i / 8.0) + "\"/>";
  s += "</linearGradient><pattern id=\"" + id + "-na\" patternUnits=\"userSpaceOnUse\" width=\"6\" height=\"6\" "
       "patternTransform=\"rotate(45)\"><rect width=\"6\" height=\"6\" fill=\"#eee\"/>" +
       line(0, 0, 0, 6, "stroke=\"#bbb\" stroke-width=\"1.5\"") + "</pattern></defs>";
  const double sx = left, sw = 260;
  s += text(sx, 14, value_title + (dark_high ? " (darker = higher)" : " (darker = lower)"), "axis-title", "start",
            kTitlePx) +
       "<rect" + attr("x", sx) + attr("y", 20) + attr("width", sw) + " height=\"10\" fill=\"url(#" + id +
       "-g)\" stroke=\"#333\" stroke-width=\"0.5\"/>";
  for (size_t i = 0; i < t.values.size(); ++i) {
    const double x = sx + sw * (t.values[i] - t.lo) / (t.hi - t.lo);
    s += line(x, 30, x, 34, "stroke=\"#333\"") + text(x, 45, t.labels[i], "tick-c", "middle");
  }
  s += "<rect" + attr("x", sx + sw + 30) + attr("y", 20) + " width=\"14\" height=\"10\" fill=\"url(#" + id +
       "-na)\"/>" + text(sx + sw + 50, 29, "no value", "legend-text", "start");
  char fmt[16];
  std::snprintf(fmt, sizeof fmt, "%%.%df", std::clamp(digits, 0, 6));
  for (size_t r = 0; r < rows.size(); ++r) {
    const double y = top + cell_h * double(r);
    for (size_t c = 0; c < columns.size() && c < values[r].size(); ++c) {
      const double v = values[r][c], x = left + cell_w * double(c);
      char b[48] = "no value";
      if (std::isfinite(v)) std::snprintf(b, sizeof b, fmt, v);
      s += "<rect" + attr("x", x) + attr("y", y) + attr("width", cell_w) + attr("height", cell_h) + " fill=\"" +
           (std::isfinite(v) ? ramp(shade(v)) : "url(#" + id + "-na)") +
           "\" stroke=\"#fff\" stroke-width=\"1\"><title>" +
           escape(rows[r] + ", " + column_title + " " + columns[c] + ": " + b) + "</title></rect>";
      if (std::isfinite(v) && text_width(b, 10) + 4 < cell_w && cell_h >= 12)
        s += text(x + cell_w / 2, y + cell_h / 2 + 3.5, b, "cell", "middle", 10,
                  shade(v) > 0.55 ? " fill=\"#fff\"" : "");
    }
    s += text(left - 6, y + cell_h / 2 + 4, rows[r], "tick-y", "end");
  }
  // Column labels, thinned to every k-th so that they do not touch.
  double col_w = 0;
  for (const auto& c : columns) col_w = std::max(col_w, text_width(c, kTickPx));
  const size_t every = size_t(std::ceil((col_w + 8) / cell_w));
  for (size_t c = 0; c < columns.size(); c += std::max<size_t>(1, every))
    s += text(left + cell_w * (double(c) + 0.5), top + plot_h + 15, columns[c], "tick-x", "middle");
  s += text(left + plot_w / 2, h - 6, column_title, "axis-title", "middle", kTitlePx);
  return s + "</svg>";
}

}  // namespace mxqat::trainers::svg
