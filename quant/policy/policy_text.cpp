// The printed table and the round-trippable text form of a ResolvedPolicy (policy.h).
// Text form, one item per line, fields separated by single spaces:
//   mxqat_policy 1 | scale_rule floor | ste clipped | group_size 0 |
//   [grad_rounding stochastic |] [backward_operands requantize |] [product mx_native |]
//   [backward_product mx_native |]
//   [rotation hadamard SEED |] [learned_scale lsq |]
//   layer NAME weight=C input=C grad_output=C rule=I match=PATTERN schedule=S
// with S = "-" or UNIT ":" PHASE ("," PHASE)*, UNIT = fraction|steps, PHASE = UNTIL "=" W "/" A
// (UNTIL printed with 17 significant digits; "*" = inherit the layer's codec).
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <sstream>

#include "autograd/error.h"
#include "quant/fake/lsq.h"
#include "quant/policy/policy.h"

namespace mxqat::quant {

namespace {

constexpr const char* kMagic = "mxqat_policy";
constexpr int kVersion = 1;

std::string exact(double v) {
  char buf[40];
  std::snprintf(buf, sizeof buf, "%.17g", v);
  return buf;
}

std::string schedule_text(const Schedule& s) {
  if (s.empty()) return "-";
  std::string out = s.absolute() ? "steps:" : "fraction:";
  auto codec = [](const std::string& c) { return c.empty() ? std::string("*") : c; };
  for (size_t i = 0; i < s.size(); ++i) {
    const Phase& p = s.phases()[i];
    out += (i ? "," : "") + exact(p.until) + "=" + codec(p.weight) + "/" + codec(p.input);
  }
  return out;
}

std::vector<std::string> split(const std::string& s, char sep) {
  std::vector<std::string> out;
  size_t start = 0;
  for (size_t i = 0; i <= s.size(); ++i)
    if (i == s.size() || s[i] == sep) out.push_back(s.substr(start, i - start)), start = i + 1;
  return out;
}

Schedule schedule_from_text(const std::string& text, const std::string& owner) {
  if (text == "-") return Schedule();
  const size_t colon = text.find(':');
  MXQAT_CHECK(colon != std::string::npos, owner, ": malformed schedule \"", text, "\"");
  const std::string unit = text.substr(0, colon);
  MXQAT_CHECK(unit == "fraction" || unit == "steps", owner, ": unknown schedule unit \"", unit,
              "\"; expected fraction or steps");
  std::vector<Phase> phases;
  for (const std::string& item : split(text.substr(colon + 1), ',')) {
    const size_t eq = item.find('='), slash = item.find('/');
    MXQAT_CHECK(eq != std::string::npos && slash != std::string::npos && slash > eq, owner,
                ": malformed phase \"", item, "\"; expected UNTIL=WEIGHT/INPUT");
    auto codec = [](const std::string& c) { return c == "*" ? std::string() : c; };
    char* end = nullptr;
    const std::string until = item.substr(0, eq);
    const double u = std::strtod(until.c_str(), &end);
    MXQAT_CHECK(end && *end == '\0' && !until.empty(), owner, ": bad `until` \"", until, "\"");
    phases.push_back({u, unit == "steps", codec(item.substr(eq + 1, slash - eq - 1)),
                      codec(item.substr(slash + 1))});
  }
  return Schedule(std::move(phases), owner);
}

int64_t parse_int(const std::string& s, const std::string& where) {
  char* end = nullptr;
  const long long v = std::strtoll(s.c_str(), &end, 10);
  MXQAT_CHECK(!s.empty() && end && *end == '\0', where, ": \"", s, "\" is not an integer");
  return v;
}

bool parse_backward_operands(const std::string& s) {
  MXQAT_CHECK(s == "requantize" || s == "reuse", "stored quant policy: backward_operands \"", s,
              "\"; expected requantize or reuse");
  return s == "requantize";
}

void check_token(const std::string& s, const std::string& what) {
  for (char c : s)
    MXQAT_CHECK(c != ' ' && c != '\n' && c != '\t' && c != '\r', "quant policy: ", what, " \"", s,
                "\" contains whitespace and cannot be stored");
}

LayerPolicy layer_from_fields(const std::vector<std::string>& f, const std::string& where) {
  MXQAT_CHECK(f.size() == 8, where, ": expected 8 fields, got ", f.size());
  std::map<std::string, std::string> kv;
  for (size_t i = 2; i < f.size(); ++i) {
    const size_t eq = f[i].find('=');
    MXQAT_CHECK(eq != std::string::npos, where, ": field \"", f[i], "\" is not key=value");
    kv[f[i].substr(0, eq)] = f[i].substr(eq + 1);
  }
  for (const char* key : {"weight", "input", "grad_output", "rule", "match", "schedule"})
    MXQAT_CHECK(kv.count(key), where, ": missing field \"", key, "\"");
  for (const char* key : {"weight", "input", "grad_output"})
    check_codec_name(kv[key], where + " " + key);
  const std::string owner = where + " (layer " + f[1] + ") schedule";
  return {f[1], kv["weight"], kv["input"], kv["grad_output"],
          schedule_from_text(kv["schedule"], owner), static_cast<int>(parse_int(kv["rule"], where + " rule")), kv["match"]};
}

}  // namespace

std::string ResolvedPolicy::to_text() const {
  std::ostringstream os;
  os << kMagic << ' ' << kVersion << '\n'
     << "scale_rule " << scale_rule_name(scale_rule) << '\n'
     << "ste " << ste_name(ste) << '\n'
     << "group_size " << group_size << '\n';
  if (rotation) os << "rotation hadamard " << rotation->seed << '\n';
  // Written only when set, so the text of every policy without them is unchanged.
  if (grad_rounding != Rounding::kNearest) os << "grad_rounding " << rounding_name(grad_rounding) << '\n';
  if (requantize_backward) os << "backward_operands requantize\n";
  if (product != Product::kFp32Chain) os << "product " << product_name(product) << '\n';
  if (backward_product != Product::kFp32Chain)
    os << "backward_product " << product_name(backward_product) << '\n';
  if (learned_scale) os << "learned_scale lsq\n";
  for (const LayerPolicy& lp : layers) {
    check_token(lp.layer, "layer name");
    check_token(lp.match, "rule pattern");
    os << "layer " << lp.layer << " weight=" << lp.weight << " input=" << lp.input
       << " grad_output=" << lp.grad_output << " rule=" << lp.rule << " match=" << lp.match
       << " schedule=" << schedule_text(lp.schedule) << '\n';
  }
  return os.str();
}

ResolvedPolicy ResolvedPolicy::from_text(const std::string& text) {
  ResolvedPolicy p;
  std::istringstream is(text);
  std::string line;
  int lineno = 0;
  bool header = false;
  while (std::getline(is, line)) {
    ++lineno;
    if (line.empty()) continue;
    const std::vector<std::string> f = split(line, ' ');
    const std::string where = "stored quant policy, line " + std::to_string(lineno);
    MXQAT_CHECK(header || (f.size() == 2 && f[0] == kMagic), where, ": expected \"", kMagic, " ",
                kVersion, "\", got \"", line, "\"; is this a policy written by mxqat?");
    if (!header) {
      MXQAT_CHECK(f[1] == std::to_string(kVersion), where, ": policy text is version ", f[1],
                  ", this build reads version ", kVersion);
      header = true;
    } else if (f[0] == "layer") {
      p.layers.push_back(layer_from_fields(f, where));
    } else if (f[0] == "rotation") {
      MXQAT_CHECK(f.size() == 3 && f[1] == "hadamard", where, ": expected \"rotation hadamard SEED\", got \"",
                  line, "\"");
      const int64_t seed = parse_int(f[2], where + " rotation seed");
      MXQAT_CHECK(seed >= 0, where, ": rotation seed ", seed, " must be >= 0");
      p.rotation = Hadamard{static_cast<uint64_t>(seed)};
    } else {
      MXQAT_CHECK(f.size() == 2, where, ": expected \"KEY VALUE\", got \"", line, "\"");
      if (f[0] == "scale_rule") p.scale_rule = parse_scale_rule(f[1]);
      else if (f[0] == "ste") p.ste = parse_ste(f[1]);
      else if (f[0] == "group_size") p.group_size = parse_int(f[1], where);
      else if (f[0] == "product") p.product = parse_product(f[1]);
      else if (f[0] == "backward_product") p.backward_product = parse_product(f[1]);
      else if (f[0] == "learned_scale") p.learned_scale = parse_learned_scale(f[1]);
      else if (f[0] == "grad_rounding") p.grad_rounding = parse_rounding(f[1]);
      else if (f[0] == "backward_operands") p.requantize_backward = parse_backward_operands(f[1]);
      else MXQAT_FAIL(where, ": unknown key \"", f[0], "\"");
    }
  }
  MXQAT_CHECK(header, "stored quant policy is empty; expected a \"", kMagic, "\" header");
  for (LayerPolicy& lp : p.layers) lp.rotated = p.rotation && (lp.weight != "none" || lp.input != "none");
  return p;
}

std::string ResolvedPolicy::table() const {
  std::vector<std::vector<std::string>> rows = {
      {"layer", "weight", "input", "grad_output", "schedule", "rule"}};
  for (const LayerPolicy& lp : layers)
    rows.push_back({lp.layer, lp.weight, lp.input, lp.grad_output, lp.schedule.describe(),
                    lp.rule < 0 ? "default" : std::to_string(lp.rule) + " \"" + lp.match + "\""});
  std::vector<size_t> width(rows[0].size(), 0);
  for (const auto& r : rows)
    for (size_t c = 0; c < r.size(); ++c) width[c] = std::max(width[c], r[c].size());
  std::ostringstream os;
  os << "quant policy (scale_rule " << scale_rule_name(scale_rule) << ", ste " << ste_name(ste)
     << ", int group_size " << group_size
     << (grad_rounding != Rounding::kNearest ? std::string(", grad_rounding ") + rounding_name(grad_rounding) : "")
     << (requantize_backward ? ", backward_operands requantize" : "")
     << (product == Product::kFp32Chain ? "" : std::string(", product ") + product_name(product))
     << (backward_product == Product::kFp32Chain
             ? ""
             : std::string(", backward_product ") + product_name(backward_product) +
                   " (layers with grad_output mxfp4 / mxfp6_e2m3)")
     << (rotation ? ", rotation " + rotation->describe() : "")
     << (learned_scale ? ", learned_scale lsq" : "") << ")\n";
  for (const auto& r : rows) {
    std::string line;
    for (size_t c = 0; c < r.size(); ++c)
      line += r[c] + (c + 1 < r.size() ? std::string(width[c] - r[c].size() + 2, ' ') : "");
    os << line << '\n';
  }
  return os.str();
}

}  // namespace mxqat::quant
