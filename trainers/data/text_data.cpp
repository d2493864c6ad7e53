// Text splits, seeded windows and the language-model metrics.
#include "trainers/data/text_data.h"

#include <cmath>
#include <filesystem>
#include <fstream>
#include <iterator>

#include "trainers/recipe/recipe.h"

namespace mxqat::trainers {

namespace {
// splitmix64 of one word: the window starts are a hash of (seed, step, row), no generator state.
uint64_t mix(uint64_t z) {
  z += 0x9E3779B97F4A7C15ull;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

TokenIds read_split(const std::string& dir, const std::string& name, int64_t context) {
  const std::string path = dir + "/" + name + ".txt";
  std::error_code ec;
  MXQAT_CHECK(std::filesystem::is_regular_file(path, ec) && std::filesystem::file_size(path, ec) > 0,
              "text split ", path, " is missing or empty; prepare the corpus with "
              "scripts/prepare_kjv.sh (writes data/kjv/{train,val,test}.txt), or set data.dir");
  std::ifstream in(path, std::ios::binary);
  std::vector<uint8_t> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  MXQAT_CHECK(!in.bad(), "cannot read ", path);
  MXQAT_CHECK(static_cast<int64_t>(bytes.size()) > context, path, " holds ", bytes.size(),
              " bytes, fewer than one window of model.context + 1 = ", context + 1);
  return TokenIds(bytes.begin(), bytes.end());
}

// dir/name.bin: little-endian ids of `width` bytes (2: uint16, 4: uint32), each below vocab.
TokenIds read_token_split(const std::string& dir, const std::string& name, int64_t context,
                          int64_t width, int64_t vocab) {
  const std::string path = dir + "/" + name + ".bin";
  std::error_code ec;
  MXQAT_CHECK(std::filesystem::is_regular_file(path, ec), "token split ", path, " is missing; "
              "write the train, val and test token ids of your tokenizer as ", dir,
              "/{train,val,test}.bin (little-endian uint", 8 * width, "), or set data.dir");
  const auto size = static_cast<int64_t>(std::filesystem::file_size(path, ec));
  MXQAT_CHECK(!ec && size % width == 0, "token split ", path, " holds ", size, " bytes, not a "
              "whole number of ", width, "-byte ids (data.token_bytes: ", width, "); set "
              "data.token_bytes to the width the ids were written with (2: uint16, 4: uint32)");
  const int64_t n = size / width;
  MXQAT_CHECK(n > context, path, " holds ", n, " tokens, fewer than one window of model.context + 1 = ",
              context + 1);
  std::ifstream in(path, std::ios::binary);
  std::vector<uint8_t> raw(static_cast<size_t>(size));
  in.read(reinterpret_cast<char*>(raw.data()), static_cast<std::streamsize>(size));
  MXQAT_CHECK(in.good(), "cannot read ", path);
  TokenIds ids(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) {
    const uint8_t* b = raw.data() + i * width;
    uint32_t id = uint32_t(b[0]) | uint32_t(b[1]) << 8;
    if (width == 4) id |= uint32_t(b[2]) << 16 | uint32_t(b[3]) << 24;
    MXQAT_CHECK(id < static_cast<uint64_t>(vocab), "token split ", path, ": token ", i, " is id ",
                id, ", outside the model's vocabulary of ", vocab, " (ids 0..", vocab - 1,
                "); set model.vocab to the tokenizer's vocabulary size, or check data.token_bytes");
    ids[static_cast<size_t>(i)] = static_cast<int32_t>(id);
  }
  return ids;
}

void fill(const TokenIds& s, int64_t start, int64_t row, int64_t T, float* x,
          std::vector<int32_t>& y) {
  for (int64_t t = 0; t < T; ++t) {
    x[row * T + t] = static_cast<float>(s[static_cast<size_t>(start + t)]);
    y[static_cast<size_t>(row * T + t)] = s[static_cast<size_t>(start + t + 1)];
  }
}
}  // namespace

TextData load_text(const DataCfg& cfg, int64_t context, int64_t batch, uint64_t seed, int64_t vocab) {
  MXQAT_CHECK(cfg.dataset == "text" || cfg.dataset == "tokens", "data.dataset '", cfg.dataset,
              "' is neither text nor tokens");
  TextData d;
  if (cfg.dataset == "tokens") {
    // Ids travel as floats into the embedding: exact below 2^24.
    MXQAT_CHECK(vocab <= (int64_t(1) << 24), "model.vocab ", vocab, " is above 2^24 ids");
    d.unit = "token";
    d.train = read_token_split(cfg.dir, "train", context, cfg.token_bytes, vocab);
    d.val = read_token_split(cfg.dir, "val", context, cfg.token_bytes, vocab);
    d.test = read_token_split(cfg.dir, "test", context, cfg.token_bytes, vocab);
  } else {
    MXQAT_CHECK(vocab >= 256, "byte-level text needs a vocabulary of 256, the model has ", vocab);
    d.train = read_split(cfg.dir, "train", context);
    d.val = read_split(cfg.dir, "val", context);
    d.test = read_split(cfg.dir, "test", context);
  }
  d.context = context;
  d.batch = batch;
  d.seed = seed;
  d.description = cfg.dataset + " " + cfg.dir + ": " + std::to_string(d.train.size()) + " train, " +
                  std::to_string(d.val.size()) + " val, " + std::to_string(d.test.size()) +
                  " test " + d.unit + "s" +
                  (cfg.dataset == "tokens" ? " (uint" + std::to_string(8 * cfg.token_bytes) + ")" : "") +
                  "; windows of " + std::to_string(context) + " + 1";
  return d;
}

int64_t TextData::windows(const TokenIds& split) const {
  return (static_cast<int64_t>(split.size()) - 1) / context;
}

void TextData::train_batch(int64_t step, autograd::Tensor& x, std::vector<int32_t>& y) const {
  const int64_t T = context, starts = static_cast<int64_t>(train.size()) - T;  // [0, n - T - 1]
  if (x.shape() != autograd::Shape{batch, T}) x = autograd::Tensor({batch, T});
  y.resize(static_cast<size_t>(batch * T));
  const uint64_t base = mix(seed ^ 0x7E47DA7Aull) + static_cast<uint64_t>(step) * static_cast<uint64_t>(batch);
  for (int64_t b = 0; b < batch; ++b) {
    const int64_t start = static_cast<int64_t>(mix(base + static_cast<uint64_t>(b)) % static_cast<uint64_t>(starts));
    fill(train, start, b, T, x.data(), y);
  }
}

void text_windows(const TokenIds& split, int64_t T, int64_t first, int64_t count,
                  autograd::Tensor& x, std::vector<int32_t>& y) {
  MXQAT_CHECK(first >= 0 && count >= 0 && (first + count) * T + 1 <= static_cast<int64_t>(split.size()),
              "text windows ", first, "..", first + count - 1, " of ", T, " + 1 bytes run past the ",
              split.size(), "-byte split");
  if (x.shape() != autograd::Shape{count, T}) x = autograd::Tensor({count, T});
  y.resize(static_cast<size_t>(count * T));
  for (int64_t w = 0; w < count; ++w) fill(split, (first + w) * T, w, T, x.data(), y);
}

EvalResult evaluate_text(layers::Module& model, const TokenIds& split, int64_t context,
                         int64_t batch) {
  autograd::NoGradGuard ng;
  const bool was = model.training();
  model.train(false);
  const int64_t T = context, n = (static_cast<int64_t>(split.size()) - 1) / T;
  autograd::Tensor x;
  std::vector<int32_t> y;
  double loss = 0;
  int64_t correct = 0;
  for (int64_t w = 0; w < n; w += batch) {
    text_windows(split, T, w, std::min(batch, n - w), x, y);
    const autograd::Tensor logits = model.forward(autograd::Var(x)).value();
    const int64_t V = logits.cols();
    MXQAT_CHECK(logits.rows() == static_cast<int64_t>(y.size()), "evaluate_text: the model gave ",
                logits.rows(), " rows of logits for ", y.size(), " targets");
    for (int64_t i = 0; i < logits.rows(); ++i) {
      const float* row = logits.data() + i * V;
      const float mx = *std::max_element(row, row + V);
      double se = 0;
      for (int64_t j = 0; j < V; ++j) se += std::exp(double(row[j]) - mx);
      loss += std::log(se) + mx - row[y[static_cast<size_t>(i)]];
      correct += (std::max_element(row, row + V) - row) == y[static_cast<size_t>(i)];
    }
  }
  model.train(was);
  EvalResult r;
  r.samples = n * T;
  r.loss = r.samples ? loss / double(r.samples) : 0.0;
  r.accuracy = r.samples ? double(correct) / double(r.samples) : 0.0;
  return r;
}

double bits_per_byte(double loss_nats) { return loss_nats / std::log(2.0); }
double perplexity(double loss_nats) { return std::exp(loss_nats); }

}  // namespace mxqat::trainers
