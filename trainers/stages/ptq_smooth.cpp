// The smoothing pass of the smoothquant+ / awq+ PTQ methods (ptq_smooth.h).
#include "trainers/stages/ptq_smooth.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <map>

#include "autograd/error.h"
#include "layers/gpt.h"
#include "quant/ptq/smooth.h"

namespace mxqat::trainers {

namespace {
using autograd::Tensor;
using autograd::Var;

std::vector<int64_t> identity(int64_t n) {
  std::vector<int64_t> v(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) v[static_cast<size_t>(i)] = i;
  return v;
}

// Per source channel: the max (or mean) of `v` over the layer channels mapped to it.
std::vector<double> to_source(const std::vector<double>& v, const std::vector<int64_t>& channel_of, int64_t C,
                              bool mean) {
  std::vector<double> out(static_cast<size_t>(C), 0.0), n(static_cast<size_t>(C), 0.0);
  for (size_t k = 0; k < channel_of.size(); ++k) {
    const size_t c = static_cast<size_t>(channel_of[k]);
    out[c] = mean ? out[c] + v[k] : std::max(out[c], v[k]);
    n[c] += 1;
  }
  if (mean)
    for (size_t c = 0; c < out.size(); ++c) out[c] = n[c] > 0 ? out[c] / n[c] : 0.0;
  return out;
}

// The group's input on the calibration set, every GEMM of the model at full precision: the
// captured rows [tokens, K] of the group's first layer (all layers of a group share it).
Tensor group_input(layers::Module& model, quant::QuantGemm& q, const std::vector<Tensor>& calib) {
  autograd::NoGradGuard no_grad;
  q.set_capture(true);
  std::vector<Tensor> parts;
  int64_t rows = 0;
  for (const Tensor& xb : calib) {
    model.forward(Var(xb));
    parts.push_back(q.captured().input);
    rows += parts.back().rows();
  }
  q.set_capture(false);
  const int64_t K = parts.at(0).cols();
  Tensor x = Tensor::uninit({rows, K});
  int64_t at = 0;
  for (const Tensor& p : parts) {
    std::copy(p.data(), p.data() + p.size(), x.data() + at);
    at += p.size();
  }
  return x;
}
}  // namespace

std::vector<SmoothGroup> smoothing_groups(const layers::Module& model, const std::string& method) {
  const auto* gpt = dynamic_cast<const layers::Gpt*>(&model);
  MXQAT_CHECK(gpt, "PTQ method '", method, "' folds its per-channel scales into the RMSNorm gains and ",
              "projections of the gpt; a ", model.kind(), " model has no such fold points: use rtn, mse or gptq");
  const layers::GptConfig& c = gpt->config();
  const int64_t D = c.head_dim(), r = c.heads / c.kv_head_count();
  std::vector<int64_t> o_map(static_cast<size_t>(c.d_model));
  for (int64_t h = 0; h < c.heads; ++h)
    for (int64_t d = 0; d < D; ++d) o_map[static_cast<size_t>(h * D + d)] = (h / r) * D + d;
  std::vector<SmoothGroup> g;
  for (int64_t i = 0; i < c.layers; ++i) {
    const std::string b = "blocks." + std::to_string(i) + ".";
    g.push_back({b + "attn_norm.weight", false, {b + "attn.q", b + "attn.k", b + "attn.v"}, identity(c.d_model)});
    g.push_back({b + "attn.v.weight", true, {b + "attn.o"}, o_map});
    g.push_back({b + "mlp_norm.weight", false, {b + "mlp.gate", b + "mlp.up"}, identity(c.d_model)});
    g.push_back({b + "mlp.up.weight", true, {b + "mlp.down"}, identity(c.mlp_hidden)});
  }
  g.push_back({"norm.weight", false, {"head"}, identity(c.d_model)});
  return g;
}

std::vector<SmoothRecord> smooth_model(layers::Module& model, quant::QuantPlan& plan, const std::vector<Tensor>& calib,
                                       const std::string& smoothing, const PtqCfg& cfg) {
  MXQAT_CHECK(smoothing == "smoothquant" || smoothing == "awq", "unknown smoothing '", smoothing,
              "'; known: smoothquant, awq");
  MXQAT_CHECK(!calib.empty(), smoothing, ": no calibration batches");
  const std::vector<SmoothGroup> groups = smoothing_groups(model, smoothing);
  std::map<std::string, Var> params;
  for (auto [name, v] : model.named_parameters()) params.emplace(name, v);
  std::vector<quant::GemmQuantSpec> specs;  // the plan's, restored at the end
  for (size_t i = 0; i < plan.size(); ++i) {
    specs.push_back(plan.quantizer(i)->spec());
    plan.quantizer(i)->set_spec({});
  }
  std::map<std::string, size_t> index;
  for (size_t i = 0; i < plan.size(); ++i) index[plan.layer(i)] = i;
  std::vector<SmoothRecord> out;
  for (const SmoothGroup& g : groups) {
    std::vector<quant::ptq::AwqGemm> gemms;
    std::vector<const Tensor*> weights;
    bool quantized = false;
    for (const std::string& l : g.layers) {
      const quant::GemmQuantSpec& sp = specs.at(index.at(l));
      quantized = quantized || sp.weight || sp.input;
      const Tensor& w = params.at(l + ".weight").value();
      weights.push_back(&w);
      gemms.push_back({&w, sp.weight ? &*sp.weight : nullptr, sp.input ? &*sp.input : nullptr});
    }
    if (!quantized) continue;
    Tensor& src = params.at(g.source).value();
    const int64_t C = src.dim(0);  // channels: a gain's entries, a weight's rows
    const Tensor x = group_input(model, *plan.quantizer(index.at(g.layers[0])), calib);
    quant::ptq::ChannelStats stats(x.cols());
    stats.add(x, g.layers[0] + " input");
    SmoothRecord rec{g.source, cfg.smoothquant_alpha, 0, 0};
    std::vector<float> s_src;  // [C]
    if (smoothing == "smoothquant" && cfg.smoothquant_grid == 0) {
      s_src = quant::ptq::smoothquant_scales(to_source(stats.absmax(), g.channel_of, C, false),
                                              to_source(quant::ptq::column_absmax(weights), g.channel_of, C, false),
                                              cfg.smoothquant_alpha);
    } else if (smoothing == "smoothquant") {
      // alpha searched on the group's output error; the maxima per source channel, given to each
      // layer channel of that source so that they share one scale
      const std::vector<double> xm = to_source(stats.absmax(), g.channel_of, C, false);
      const std::vector<double> wm = to_source(quant::ptq::column_absmax(weights), g.channel_of, C, false);
      std::vector<double> xk(g.channel_of.size()), wk(g.channel_of.size());
      for (size_t k = 0; k < xk.size(); ++k)
        xk[k] = xm[static_cast<size_t>(g.channel_of[k])], wk[k] = wm[static_cast<size_t>(g.channel_of[k])];
      const quant::ptq::AwqResult res =
          quant::ptq::smoothquant_search(x, xk, wk, gemms, static_cast<int>(cfg.smoothquant_grid), g.source);
      rec.alpha = res.alpha;
      rec.error = res.error;
      rec.error_identity = res.error_identity;
      s_src.assign(static_cast<size_t>(C), 1.0f);
      for (size_t k = 0; k < g.channel_of.size(); ++k) s_src[static_cast<size_t>(g.channel_of[k])] = res.scales[k];
    } else {
      // AWQ on the layers' channels with each one's mean |x| replaced by its source channel's,
      // so that channels sharing a source get one scale.
      const std::vector<double> src_mean = to_source(stats.absmean(), g.channel_of, C, true);
      std::vector<double> mean(g.channel_of.size());
      for (size_t k = 0; k < mean.size(); ++k) mean[k] = src_mean[static_cast<size_t>(g.channel_of[k])];
      quant::ptq::AwqOptions ao;
      ao.grid = static_cast<int>(cfg.awq_grid);
      const quant::ptq::AwqResult res = quant::ptq::awq_search(x, mean, gemms, ao, g.source);
      rec.alpha = res.alpha;
      rec.error = res.error;
      rec.error_identity = res.error_identity;
      s_src.assign(static_cast<size_t>(C), 1.0f);
      for (size_t k = 0; k < g.channel_of.size(); ++k) s_src[static_cast<size_t>(g.channel_of[k])] = res.scales[k];
    }
    // Fold: the source's channel c divided by s_c, every layer's input column k multiplied by s_c(k).
    const int64_t in = src.size() / C;
    for (int64_t cc = 0; cc < C; ++cc)
      for (int64_t j = 0; j < in; ++j) src[cc * in + j] /= s_src[static_cast<size_t>(cc)];
    std::vector<float> s_in(g.channel_of.size());
    for (size_t k = 0; k < s_in.size(); ++k) s_in[k] = s_src[static_cast<size_t>(g.channel_of[k])];
    for (const std::string& l : g.layers) quant::ptq::scale_columns(params.at(l + ".weight").value(), s_in);
    spdlog::debug("{} {}: alpha {:.3f}, error {:.6g} (unsmoothed {:.6g})", smoothing, g.source, rec.alpha,
                  rec.error, rec.error_identity);
    out.push_back(rec);
  }
  for (size_t i = 0; i < plan.size(); ++i) plan.quantizer(i)->set_spec(specs[i]);
  return out;
}

}  // namespace mxqat::trainers
