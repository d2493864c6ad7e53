// Generation with a byte-level gpt and the KV-cache evaluation (see generate.h).
#include "trainers/runtime/generate.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <numeric>

#include "trainers/data/text_data.h"

namespace mxqat::trainers {

namespace {
using Clock = std::chrono::steady_clock;
double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

void check_gpt_recipe(const Recipe& r, const std::string& path) {
  MXQAT_CHECK(r.model.type == "gpt", path, " holds a '", r.model.type, "' model (recipe model.type); "
              "sampling needs a byte-level gpt, e.g. one trained from recipes/kjv_gpt.yaml");
}

// ln-sum-exp of a logits row minus the target's logit (nats), in double.
double nll(const float* row, int64_t V, int32_t target) {
  const float mx = *std::max_element(row, row + V);
  double se = 0;
  for (int64_t j = 0; j < V; ++j) se += std::exp(double(row[j]) - mx);
  return std::log(se) + mx - row[target];
}
}  // namespace

uint64_t SplitMix64::next() {
  uint64_t z = (state_ += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

double SplitMix64::uniform() { return double(next() >> 11) * 0x1.0p-53; }

InferenceModel load_gpt(const std::string& path, InferPath p) {
  LoadOptions o;
  o.path = p;
  o.check_recipe = [&path](const Recipe& r) { check_gpt_recipe(r, path); };
  return load_model(path, o);
}

layers::Gpt& gpt_of(const InferenceModel& m) {
  auto* g = dynamic_cast<layers::Gpt*>(m.model.get());
  MXQAT_CHECK(g != nullptr, "the model is a ", m.model->kind(), ", not a gpt");
  return *g;
}

int32_t sample_token(const float* logits, int64_t V, float temperature, int64_t top_k,
                     SplitMix64& rng) {
  MXQAT_CHECK(V > 0 && temperature >= 0.f && std::isfinite(temperature) && top_k >= 0,
              "sampling: temperature ", temperature, " must be finite and >= 0 and top-k ", top_k,
              " >= 0 (0 = no limit)");
  if (temperature == 0.f) return int32_t(std::max_element(logits, logits + V) - logits);
  std::vector<int32_t> order(static_cast<size_t>(V));
  std::iota(order.begin(), order.end(), 0);
  const int64_t k = top_k == 0 ? V : std::min(top_k, V);
  // The k largest, ties to the lower index, in a fixed order.
  std::partial_sort(order.begin(), order.begin() + k, order.end(), [&](int32_t a, int32_t b) {
    return logits[a] > logits[b] || (logits[a] == logits[b] && a < b);
  });
  const double mx = logits[order[0]];
  std::vector<double> p(static_cast<size_t>(k));
  double total = 0;
  for (int64_t i = 0; i < k; ++i)
    total += (p[size_t(i)] = std::exp((double(logits[order[size_t(i)]]) - mx) / temperature));
  const double u = rng.uniform() * total;
  double acc = 0;
  for (int64_t i = 0; i < k; ++i)
    if (u < (acc += p[size_t(i)])) return order[size_t(i)];
  return order[size_t(k - 1)];  // u rounded up to the total
}

Generation generate(layers::Gpt& model, const std::string& prompt, const SampleOptions& o) {
  const int64_t ctx = model.config().context, V = model.config().vocab;
  const int64_t P = static_cast<int64_t>(prompt.size());
  MXQAT_CHECK(P >= 1, "sample: the prompt is empty; give at least one byte (e.g. --prompt 'And ')");
  MXQAT_CHECK(P <= ctx, "sample: the prompt is ", P, " bytes but the model's context is ", ctx,
              " bytes; shorten the prompt to at most ", ctx, " bytes");
  MXQAT_CHECK(o.tokens >= 0, "sample: --tokens ", o.tokens, " must be >= 0");
  layers::KvCache cache(model.config(), o.kv_cache);
  SplitMix64 rng(o.seed);
  std::vector<int32_t> seq;
  for (unsigned char ch : prompt) seq.push_back(int32_t(ch));
  Generation g;
  g.prompt_tokens = P;
  g.kv_bytes_per_token = cache.bytes_per_token();
  auto t0 = Clock::now();
  autograd::Tensor logits = model.forward_cached(seq, cache).value();
  g.prefill_s = seconds_since(t0);
  t0 = Clock::now();
  for (int64_t i = 0; i < o.tokens; ++i) {
    const int32_t t = sample_token(logits.data() + (logits.rows() - 1) * V, V, o.temperature, o.top_k, rng);
    seq.push_back(t);
    g.text.push_back(static_cast<char>(static_cast<unsigned char>(t)));
    if (i + 1 == o.tokens) break;  // the last token's logits are not needed
    if (cache.length() == cache.capacity()) {
      cache.clear();
      const std::vector<int32_t> tail(seq.end() - std::max<int64_t>(1, ctx / 2), seq.end());
      logits = model.forward_cached(tail, cache).value();
      ++g.refills;
    } else {
      logits = model.forward_cached({t}, cache).value();
    }
  }
  g.decode_s = seconds_since(t0);
  g.new_tokens = o.tokens;
  return g;
}

KvEval eval_kv_cache(layers::Gpt& model, const TokenIds& split, int64_t windows,
                     const std::string& kv_cache) {
  autograd::NoGradGuard no_grad;
  const int64_t T = model.config().context, V = model.config().vocab;
  const int64_t avail = (static_cast<int64_t>(split.size()) - 1) / T;
  MXQAT_CHECK(windows >= 1 && windows <= avail, "eval-kv: ", windows, " windows of ", T + 1,
              " bytes asked but the split holds ", avail, "; ask for 1 .. ", avail);
  layers::KvCache cache(model.config(), kv_cache);
  KvEval e;
  e.kv_cache = kv_cache;
  e.windows = windows;
  e.bytes_per_token = cache.bytes_per_token();
  double loss = 0, full_loss = 0;
  const auto t0 = Clock::now();
  autograd::Tensor x;
  std::vector<int32_t> y;
  for (int64_t w = 0; w < windows; ++w) {
    text_windows(split, T, w, 1, x, y);
    std::vector<int32_t> ids(static_cast<size_t>(T));
    for (int64_t t = 0; t < T; ++t) ids[size_t(t)] = int32_t(x[t]);
    const autograd::Tensor full = model.forward_ids(ids, T).value();  // [1, T, V]
    cache.clear();
    for (int64_t t = 0; t < T; ++t) {
      const autograd::Tensor step = model.forward_cached({ids[size_t(t)]}, cache).value();  // [1, V]
      const float* fr = full.data() + t * V;
      for (int64_t j = 0; j < V; ++j)
        e.max_abs_logit_diff = std::max(e.max_abs_logit_diff, double(std::fabs(step[j] - fr[j])));
      loss += nll(step.data(), V, y[size_t(t)]);
      full_loss += nll(fr, V, y[size_t(t)]);
    }
  }
  e.seconds = seconds_since(t0);
  e.predictions = windows * T;
  e.bits_per_byte = bits_per_byte(loss / double(e.predictions));
  e.full_bits_per_byte = bits_per_byte(full_loss / double(e.predictions));
  return e;
}

}  // namespace mxqat::trainers
