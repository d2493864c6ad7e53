// The report as a page: the tick algorithm (distinct labels that cover the data), the legend
// layout (no overlaps, wrapping), report.html's tables, telemetry, warnings and gpt sections on
// a hand-made run directory (no training), and the page in headless Chromium at 1200 px: no
// horizontal overflow, every chart with its labels, no duplicate or overlapping tick labels, no
// overlapping legend entries (skipped, with a message, where chromium is absent).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <regex>
#include <set>

#include "tests/test_util.h"
#include "trainers/report/report.h"
#include "trainers/report/report_svg.h"
#include "trainers/util/json_read.h"
#include "trainers/util/json_write.h"

namespace mxqat::trainers {
namespace {

namespace fs = std::filesystem;
using mxqat::testing::fresh_dir;

TEST(Svg, NiceTicksAreDistinctAndCoverTheData) {
  // The case first: accuracies 0.9001 .. 0.9012 once gave "0.901" twice.
  std::vector<std::pair<double, double>> ranges = {{0.9001, 0.9012}, {0.62, 0.7433}, {0, 1}, {-3, 7},
                                                   {1.7139, 1.7534}, {1e-7, 3e-7}, {2e6, 9e6}, {-0.004, -0.001},
                                                   {5, 5}, {0, 0}, {12.5, 31.76}, {0, 5148}};
  uint64_t s = 42;
  for (int i = 0; i < 300; ++i) {  // random ranges at random magnitudes
    s = s * 6364136223846793005ull + 1442695040888963407ull;
    const double mag = std::pow(10.0, double(int(s >> 60) - 6));
    const double a = double((s >> 20) & 0xffff) / 65536.0 * mag, w = double((s >> 36) & 0xffff) / 65536.0 * mag;
    ranges.push_back({a - mag / 2, a - mag / 2 + w * (i % 3 == 0 ? 0.001 : 1)});
  }
  for (auto [lo, hi] : ranges) {
    const svg::Ticks t = svg::nice_ticks(lo, hi, 5);
    SCOPED_TRACE(std::to_string(lo) + " .. " + std::to_string(hi));
    ASSERT_GE(t.values.size(), 2u);
    EXPECT_LE(t.values.size(), 12u);
    EXPECT_LE(t.lo, lo);
    EXPECT_GE(t.hi, hi);
    EXPECT_EQ(t.values.front(), t.lo);
    EXPECT_NEAR(t.values.back(), t.hi, 1e-9 * std::max(1.0, std::abs(t.hi)));
    const double m = t.step / std::pow(10.0, std::floor(std::log10(t.step) + 1e-12));
    EXPECT_TRUE(std::abs(m - 1) < 1e-9 || std::abs(m - 2) < 1e-9 || std::abs(m - 5) < 1e-9) << t.step;
    const std::set<std::string> distinct(t.labels.begin(), t.labels.end());
    EXPECT_EQ(distinct.size(), t.labels.size()) << ::testing::PrintToString(t.labels);
    for (size_t j = 0; j < t.labels.size(); ++j)  // the label reads back as its tick
      EXPECT_NEAR(std::stod(t.labels[j]), t.values[j], t.step * 1e-6) << t.labels[j];
  }
  const svg::Ticks t = svg::nice_ticks(0.9001, 0.9012, 5);
  EXPECT_EQ(t.labels, (std::vector<std::string>{"0.9000", "0.9002", "0.9004", "0.9006", "0.9008", "0.9010", "0.9012"}));
  EXPECT_EQ(svg::nice_ticks(0, 5148, 5).labels,
            (std::vector<std::string>{"0", "1000", "2000", "3000", "4000", "5000", "6000"}));
  EXPECT_EQ(svg::nice_ticks(2e6, 9e6, 4).labels,
            (std::vector<std::string>{"2.0e+06", "4.0e+06", "6.0e+06", "8.0e+06", "1.0e+07"}));
  EXPECT_EQ(svg::nice_ticks(NAN, 1, 5).labels.front(), "0.0");  // a bad bound: a unit axis
}

TEST(Svg, LegendEntriesWrapAndNeverOverlap) {
  const std::vector<std::string> names = {"mxfp4_direct", "mxfp4_progressive", "mxfp6_e2m3_direct",
                                          "mxfp6_e2m3_progressive", "mxfp8_e4m3_direct", "mxfp8_e4m3_progressive",
                                          "FP32 baseline (0.9005)", "a",
                                          "an entry far longer than the row it must fit in at all"};
  for (double width : {900.0, 400.0, 120.0}) {
    const auto boxes = svg::legend_layout(names, 50, 6, width);
    ASSERT_EQ(boxes.size(), names.size());
    for (size_t i = 0; i < boxes.size(); ++i) {
      EXPECT_GE(boxes[i].w, svg::text_width(names[i]) + 20) << names[i];
      // inside the row's width unless the entry alone is wider (then it starts the row)
      if (boxes[i].x + boxes[i].w > 50 + width) {
        EXPECT_EQ(boxes[i].x, 50) << names[i];
      }
      for (size_t j = 0; j < i; ++j)
        EXPECT_FALSE(svg::overlap(boxes[i], boxes[j])) << names[i] << " / " << names[j] << " at width " << width;
    }
    EXPECT_GT(boxes.back().y, boxes.front().y) << "a row of " << width << " px must wrap";
  }
  EXPECT_TRUE(svg::overlap({0, 0, 10, 10}, {9, 9, 5, 5}));
  EXPECT_FALSE(svg::overlap({0, 0, 10, 10}, {10, 0, 5, 5}));
  EXPECT_GT(svg::text_width("mxfp6_e2m3_progressive"), svg::text_width("mxfp4"));
}

// A run directory written by hand: what the stages leave behind for the report to read.
void write(const fs::path& p, const std::string& text) {
  fs::create_directories(p.parent_path());
  write_file_atomic(p.string(), text);
}

const std::vector<std::string> kFormats = {"mxfp4", "mxfp6_e2m3", "mxfp8_e4m3"};

fs::path fixture_run(const std::string& name, bool gpt) {
  const fs::path d = fresh_dir(name);
  const std::string metric = gpt ? "test_bits_per_byte" : "test_accuracy";
  const double base = gpt ? 1.7154 : 0.9005;
  std::string train;
  for (int s = 50; s <= 2000; s += 50)
    train += JsonObject().str("stage", "train").str("split", "train").integer("step", s)
                 .num("loss", 2.0 / std::sqrt(s)).dump() + "\n";
  write(d / "baseline/summary.json", JsonObject().str("recipe", name).str("metric", metric).num(metric, base).dump());
  write(d / "baseline/metrics.jsonl", train);
  std::string rows = "[";
  const char* methods[] = {"rtn", "mse", "gptq"};
  for (size_t f = 0; f < kFormats.size(); ++f)
    for (int m = 0; m < 3; ++m) {
      std::string layers = "[";
      for (const char* l : {"fc1", "fc2", "head"})
        layers += (layers.size() > 1 ? "," : "") +
                  JsonObject().str("layer", l).num("sqnr_db", 17.5 + 6.0 * double(f) + m).dump();
      rows += (rows.size() > 1 ? "," : "") +
              JsonObject().str("format", kFormats[f]).str("method", methods[m])
                  .num("value", gpt ? base + 0.04 - 0.001 * m - 0.01 * double(f) : base - 0.0004 + 0.0001 * m)
                  .integer("bytes", 14602 + 6000 * int64_t(f)).raw("layers", layers + "]").dump();
    }
  write(d / "ptq/summary.json", JsonObject().integer("baseline_bytes", 104648).integer("calib_samples", 64)
                                    .str("scale_rule", "floor").raw("rows", rows + "]").dump());
  std::string variants = "[";
  for (size_t f = 0; f < kFormats.size(); ++f)
    for (bool prog : {false, true}) {
      const std::string id = kFormats[f] + (prog ? "_progressive" : "_direct");
      const bool main = f == 0 && prog;
      variants += (variants.size() > 1 ? "," : "") + JsonObject().str("id", id).str("format", kFormats[f])
                                                         .boolean("progressive", prog).boolean("main", main).dump();
      const double v = gpt ? base - 0.001 * double(f) + 0.0005 * prog
                           : base + 0.0007 - 0.0001 * double(f) + 0.0001 * prog;
      write(d / "qat" / id / "summary.json",
            JsonObject().num("qat", v).num("direct_cast", gpt ? base + 0.04 : base - 0.0004).dump());
      std::string m;
      for (int s = 10; s <= 600; s += 10)
        m += JsonObject().str("stage", "qat").str("split", "train").integer("step", s)
                 .num("loss", 0.5 + 0.1 / s + 0.01 * double(f)).dump() + "\n";
      if (main) {
        m += JsonObject().str("stage", "qat").str("event", "phase").str("layer", "fc2").integer("step", 180)
                 .integer("phase", 1).str("weight", "mxfp6_e2m3").str("input", "mxfp6_e2m3").dump() + "\n";
        m += JsonObject().str("stage", "qat").str("event", "phase").str("layer", "fc2").integer("step", 360)
                 .integer("phase", 2).str("weight", "mxfp4").str("input", "mxfp4").dump() + "\n";
        for (int s = 100; s <= 600; s += 100)
          for (const char* t : {"fc1.weight", "fc1.input", "fc2.weight", "fc2.input", "head.weight"}) {
            const bool low = std::string(t) == "fc2.input" && s >= 400;
            JsonObject o;
            o.str("stage", "qat").str("monitor", t).str("codec", low ? "mxfp4" : "mxfp8_e4m3").integer("step", s)
                .integer("numel", 4096).integer("blocks", 128).integer("nan", 0).integer("inf", 0)
                .num("sqnr_db", low ? 4.25 : 20 + s / 100.0).num("saturated", 0.01).num("flushed", 0.002)
                .integer("zero_blocks", 0).integer("flushed_blocks", 0);
            if (s > 100) o.num("flips", 0.05 / (s / 100.0));
            if (low) o.integer("scale_exp[-127]", 2);  // all-zero blocks: far below the others
            o.integer("nan_scales", 0).integer("scale_exp[-7]", 30 + s / 100).integer("scale_exp[-6]", 90)
                .integer("scale_exp[-5]", 8 - s / 100);
            // the first records as an older build wrote them (no "warnings": the report re-runs
            // the check), the later ones with the warnings the run logged
            const char* logged = "[\"tensor \\\"fc2.input\\\" (mxfp4): SQNR 4.25 dB is below the 5 dB threshold\"]";
            if (s >= 500) o.raw("warnings", low ? logged : "[]");
            m += o.dump() + "\n";
          }
        m += JsonObject().str("stage", "qat").str("event", "warning").integer("step", 250)
                 .str("message", "loss is nan: step skipped, weights unchanged").dump() + "\n";
      }
      write(d / "qat" / id / "metrics.jsonl", m);
      std::string tensors = "[";
      for (const char* t : {"fc1.weight", "fc2.weight", "head.weight"})
        tensors += (tensors.size() > 1 ? "," : "") + JsonObject().str("name", t).num("sqnr_db", 19.0).dump();
      write(d / "export" / (id + ".json"), JsonObject().integer("bytes", 14602).raw("tensors", tensors + "]").dump());
    }
  write(d / "qat/summary.json", JsonObject().str("recipe", name).str("main", "mxfp4_progressive")
                                    .str("main_format", "mxfp4")
                                    .raw("variants", variants + "]").dump());
  write(d / "export/alignment.json",
        JsonObject().str("codec", "mxfp4").str("metric", metric).integer("samples", 300).num("max_abs_diff", 0)
            .boolean("bitwise_equal", true)
            .raw("matrix", JsonObject().num("fp32_fp32", base).num("fp32_codec", base - 0.0004)
                               .num("qat_fp32", base + 0.001)
                               .num("qat_codec", base + 0.0007).dump()).dump());
  if (gpt) {
    std::string samples = "[";
    for (const char* m : {"baseline (FP32)", "baseline, round to nearest", "QAT mxfp4_progressive"})
      samples += (samples.size() > 1 ? "," : "") +
                 JsonObject().str("model", m).str("file", "x.h5")
                     .str("text", std::string("unto the <LORD> & ") + m + " " + std::string(300, 'w')).dump();
    write(d / "sample/samples.json", JsonObject().str("prompt", "And God said, ").integer("seed", 1)
                                         .num("temperature", 0.8).integer("tokens", 160)
                                         .raw("samples", samples + "]").dump());
    write(d / "sample/kv_cache.json",
          JsonObject().str("model", "mxfp4_progressive.h5").integer("windows", 32).integer("predictions", 4096)
              .raw("settings", "[" + JsonObject().str("kv_cache", "none").num("test_bits_per_byte", 1.8188)
                                         .num("full_forward_bits_per_byte", 1.8188).num("max_abs_logit_diff", 2e-6)
                                         .integer("kv_bytes_per_token", 6144).dump() + "," +
                                   JsonObject().str("kv_cache", "mxfp8_e4m3").num("test_bits_per_byte", 1.8201)
                                         .num("full_forward_bits_per_byte", 1.8188).num("max_abs_logit_diff", 0.03)
                                         .integer("kv_bytes_per_token", 1600).dump() + "]").dump());
  }
  return d;
}

size_t count(const std::string& s, const std::string& what) {
  size_t n = 0;
  for (size_t p = 0; (p = s.find(what, p)) != std::string::npos; p += what.size()) ++n;
  return n;
}

// The text of every <text class="CLS"> of each chart, by chart id.
std::vector<std::pair<std::string, std::vector<std::string>>> labels(const std::string& html, const std::string& cls) {
  std::vector<std::pair<std::string, std::vector<std::string>>> out;
  const std::regex chart("<svg class=\"chart\" id=\"([^\"]+)\"");
  const std::regex text("<text class=\"" + cls + "\"[^>]*>([^<]*)</text>");
  for (auto it = std::sregex_iterator(html.begin(), html.end(), chart); it != std::sregex_iterator(); ++it) {
    const size_t begin = size_t(it->position()), end = html.find("</svg>", begin);
    const std::string svg = html.substr(begin, end - begin);
    out.push_back({(*it)[1], {}});
    for (auto t = std::sregex_iterator(svg.begin(), svg.end(), text); t != std::sregex_iterator(); ++t)
      out.back().second.push_back((*t)[1]);
  }
  return out;
}

TEST(Report, EveryMarkdownTableIsAnHtmlTableAndTheBestRowIsMarked) {
  const fs::path d = fixture_run("report_tables", false);
  write_report(d.string(), (d / "report").string());
  const std::string md = read_file((d / "report/report.md").string());
  const std::string html = read_file((d / "report/report.html").string());
  EXPECT_EQ(count(html, "<table"), count(md, "\n|---")) << md;
  EXPECT_EQ(count(md, "\n|---"), 5u);  // results, alignment, sqnr, telemetry, warnings
  EXPECT_EQ(html.find("<pre"), std::string::npos);
  EXPECT_NE(html.find("<td class=\"num\">0.9005</td>"), std::string::npos);  // numbers right-aligned
  // The best method of each format: mxfp4 qat_progressive (0.9013), mxfp6 qat_progressive (0.9012),
  // mxfp8 qat_progressive (0.9011); the mxfp8 gptq row (0.9003) is not marked.
  EXPECT_EQ(count(html, "<tr class=\"best\">"), 3u);
  EXPECT_NE(html.find("<tr class=\"best\"><td>mxfp4</td><td>qat_progressive <span class=\"badge\""), std::string::npos);
  EXPECT_NE(html.find("<tr><td>mxfp8_e4m3</td><td>gptq</td>"), std::string::npos);
  EXPECT_NE(html.find("<script>"), std::string::npos);  // the sorting
  EXPECT_EQ(html.find("http://"), html.find("http://www.w3.org/2000/svg"));  // no resources from the network
  EXPECT_EQ(html.find("https://"), std::string::npos);
  // Every chart: distinct tick labels on each axis.
  const auto charts = labels(html, "tick-y");
  EXPECT_EQ(charts.size(), 8u);
  for (const char* cls : {"tick-x", "tick-y", "tick-c"})
    for (const auto& [id, l] : labels(html, cls))
      EXPECT_EQ(std::set<std::string>(l.begin(), l.end()).size(), l.size())
          << id << " " << cls << ": " << ::testing::PrintToString(l);
  for (const auto& [id, l] : labels(html, "axis-title")) EXPECT_FALSE(l.empty()) << id;
}

TEST(Report, TelemetryAndWarningsWithStepAndTensor) {
  const fs::path d = fixture_run("report_telemetry", false);
  write_report(d.string(), (d / "report").string());
  const std::string html = read_file((d / "report/report.html").string());
  for (const char* id : {"id=\"heat-sqnr-w\"", "id=\"heat-sqnr-x\"", "id=\"heat-flips\"", "id=\"exponents\""})
    EXPECT_NE(html.find(id), std::string::npos) << id;
  // the worst tensor is fc2.input (4.25 dB), its exponents from its first mxfp4 report (step 400)
  EXPECT_NE(html.find("lowest-SQNR tensor, fc2.input (mxfp4, 4.25 dB at step 600)"), std::string::npos);
  EXPECT_NE(html.find("step 400"), std::string::npos);
  // exponents -127 (all-zero blocks), -7, -6, -5: the unused run between them is one slot
  const auto ticks = labels(html, "tick-x");
  const auto ex = std::find_if(ticks.begin(), ticks.end(), [](const auto& c) { return c.first == "exponents"; });
  ASSERT_NE(ex, ticks.end());
  EXPECT_EQ(ex->second, (std::vector<std::string>{"-127", "-126..-8", "-7", "-6", "-5"}));
  // three low-SQNR warnings: step 400 (re-run check on an old record), 500 and 600 (recorded),
  // and the skipped step
  EXPECT_NE(html.find("4 warnings (mxfp4_progressive: 4)"), std::string::npos);
  EXPECT_NE(html.find("<td class=\"num\">400</td><td>fc2.input</td><td>tensor &quot;fc2.input&quot; (mxfp4): "
                      "SQNR 4.25 dB is below the 5 dB threshold</td>"), std::string::npos);
  EXPECT_NE(html.find("<td class=\"num\">600</td><td>fc2.input</td>"), std::string::npos);
  EXPECT_NE(html.find("<td class=\"num\">250</td><td>-</td><td>loss is nan: step skipped"), std::string::npos);
  const Json rep = Json::read((d / "report/report.json").string());
  EXPECT_EQ(rep.at("warnings").number(), 4);
  EXPECT_EQ(html.find("id=\"samples\""), std::string::npos);  // not a gpt
}

TEST(Report, GptSamplesAndKvCacheTable) {
  const fs::path d = fixture_run("report_gpt", true);
  write_report(d.string(), (d / "report").string());
  const std::string html = read_file((d / "report/report.html").string());
  const std::string md = read_file((d / "report/report.md").string());
  EXPECT_NE(html.find("test_bits_per_byte by format and method (lower is better)"), std::string::npos);
  EXPECT_EQ(count(html, "<pre class=\"sample\"><span class=\"prompt\">And God said, </span>"
                        "unto the &lt;LORD&gt; &amp; "), 3u);
  EXPECT_NE(html.find("<td>mxfp8_e4m3</td><td class=\"num\">1.8201</td><td class=\"num\">1.8188</td>"),
            std::string::npos);
  EXPECT_NE(md.find("| mxfp8_e4m3 | 1.8201 | 1.8188 | 0.03 | 1600 |"), std::string::npos) << md;
  // lower is better: the best mxfp4 row is qat_direct (1.7154), not rtn (1.7554)
  EXPECT_NE(html.find("<tr class=\"best\"><td>mxfp4</td><td>qat_direct <span"), std::string::npos);
  EXPECT_EQ(count(html, "<table"), count(md, "\n|---"));
}

// Headless Chromium at 1200 px: report_check.js, added to a copy of the page, measures what a
// reader sees and writes its findings into the DOM, which --dump-dom prints.
std::string chromium() {
  for (const char* c : {"chromium", "chromium-browser"}) {
    const std::string cmd = std::string("command -v ") + c + " >/dev/null 2>&1";
    if (std::system(cmd.c_str()) == 0) return c;
  }
  return "";
}

// The check's result for report.html under `d`: "CHARTS n WIDTH w\n" and the problems found.
std::string check_in_chromium(const std::string& browser, const fs::path& d) {
  std::string html = read_file((d / "report/report.html").string());
  const std::string script = read_file(std::string(MXQAT_SOURCE_DIR) + "/tests/trainers/report_check.js");
  html.insert(html.rfind("</body>"), "<script>" + script + "</script>");
  write_file_atomic((d / "checked.html").string(), html);
  fs::create_directories(d / "profile");
  const std::string cmd = "timeout 120 " + browser +
                          " --headless --no-sandbox --disable-gpu --disable-quic --no-first-run "
                          "--disable-background-networking --disable-component-update --disable-sync "
                          "--user-data-dir=" + (d / "profile").string() + " --window-size=1200,900 --dump-dom file://" +
                          (d / "checked.html").string() + " 2>/dev/null";
  FILE* p = ::popen(cmd.c_str(), "r");
  std::string dom;
  char buf[4096];
  for (size_t n; (n = std::fread(buf, 1, sizeof buf, p)) > 0;) dom.append(buf, n);
  ::pclose(p);
  const size_t a = dom.rfind("<pre id=\"mxqat-check\">"), b = dom.find("</pre>", a);
  if (a == std::string::npos) return "no result from chromium:\n" + dom.substr(0, 2000);
  return dom.substr(a + 22, b - a - 22);
}

TEST(Report, RendersInChromiumAt1200PxWithEveryChartLabelled) {
  const std::string browser = chromium();
  if (browser.empty())
    GTEST_SKIP() << "chromium is not installed: install it (scripts/install_deps.sh --browser) to check "
                    "report.html in a browser";
  for (bool gpt : {false, true}) {
    const fs::path d = fixture_run(gpt ? "report_browser_gpt" : "report_browser", gpt);
    write_report(d.string(), (d / "report").string());
    const std::string res = check_in_chromium(browser, d);
    EXPECT_NE(res.find("CHARTS 8 "), std::string::npos) << res;
    EXPECT_NE(res.find("\nALL OK"), std::string::npos) << res;
  }
}

}  // namespace
}  // namespace mxqat::trainers
