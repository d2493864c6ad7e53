// The two tasks behind task.h: image classification and the byte-level language model.
#include "trainers/data/task.h"

#include <spdlog/spdlog.h>

#include <algorithm>

namespace mxqat::trainers {

namespace {
constexpr uint64_t kCalibrationSeed = 0x5851F42D4C957F2Dull;  // calibration draws differ from training

class ImageTask final : public Task {
  Splits d_;

 public:
  ImageTask(const Recipe& r, TaskMetric m)
      : Task(std::move(m)), d_(load_fashion_mnist(r.data, static_cast<uint64_t>(r.seed))) {
    spdlog::info("{}", d_.description);
  }
  DataDims dims() const override { return {d_.train.x.cols(), d_.train.num_classes}; }
  int64_t train_examples() const override { return d_.train.size(); }
  void train_batch(int64_t step, BatchOrder& order, autograd::Tensor& x,
                   std::vector<int32_t>& y) const override {
    d_.train.gather(order.batch(step), x, y);
  }
  EvalResult evaluate(layers::Module& m, Split s) const override {
    return trainers::evaluate(m, s == Split::kVal ? d_.val : d_.test);
  }
  std::vector<std::pair<std::string, double>> loss_views(double) const override { return {}; }
  double metric_of(const EvalResult& e) const override { return e.accuracy; }
  void for_each_test_batch(int64_t limit,
                           const std::function<void(const autograd::Tensor& x)>& f) const override {
    const Dataset& d = d_.test;
    const int64_t n = limit > 0 ? std::min(limit, d.size()) : d.size();
    autograd::Tensor x;
    std::vector<int32_t> y;
    std::vector<int64_t> idx;
    for (int64_t s = 0; s < n; s += 1000) {
      idx.clear();
      for (int64_t i = s; i < std::min(n, s + 1000); ++i) idx.push_back(i);
      d.gather(idx, x, y);
      f(x);
    }
  }
  std::vector<autograd::Tensor> calibration_batches(int64_t samples, uint64_t seed) const override {
    const Dataset& train = d_.train;
    const auto perm = seeded_permutation(train.size(), seed ^ kCalibrationSeed);
    const int64_t n = std::min(samples, train.size());
    std::vector<autograd::Tensor> out;
    autograd::Tensor x;
    std::vector<int32_t> y;
    for (int64_t s = 0; s < n; s += 128) {
      std::vector<int64_t> idx(perm.begin() + s, perm.begin() + std::min(n, s + 128));
      train.gather(idx, x, y);
      out.push_back(x);
    }
    return out;
  }
  const Splits* images() const override { return &d_; }
};

class TextTask final : public Task {
  TextData t_;
  int64_t vocab_;

 public:
  TextTask(const Recipe& r, TaskMetric m)
      : Task(std::move(m)),
        t_(load_text(r.data, r.model.context, r.data.batch_size, static_cast<uint64_t>(r.seed),
                     r.model.vocab)),
        vocab_(r.model.vocab) {
    spdlog::info("{}", t_.description);
  }
  DataDims dims() const override { return {t_.context, vocab_}; }
  int64_t train_examples() const override { return t_.windows(t_.train); }
  void train_batch(int64_t step, BatchOrder&, autograd::Tensor& x,
                   std::vector<int32_t>& y) const override {
    t_.train_batch(step, x, y);
  }
  EvalResult evaluate(layers::Module& m, Split s) const override {
    return evaluate_text(m, s == Split::kVal ? t_.val : t_.test, t_.context);
  }
  std::vector<std::pair<std::string, double>> loss_views(double loss) const override {
    return {{"bits_per_" + t_.unit, bits_per_byte(loss)}, {"perplexity", perplexity(loss)}};
  }
  double metric_of(const EvalResult& e) const override { return bits_per_byte(e.loss); }
  void for_each_test_batch(int64_t limit,
                           const std::function<void(const autograd::Tensor& x)>& f) const override {
    const int64_t T = t_.context, total = t_.windows(t_.test);
    const int64_t n = limit > 0 ? std::min(limit, total) : total;
    autograd::Tensor x;
    std::vector<int32_t> y;
    for (int64_t w = 0; w < n; w += 32) {
      text_windows(t_.test, T, w, std::min<int64_t>(32, n - w), x, y);
      f(x);
    }
  }
  // Windows drawn like training batches, from another seed.
  std::vector<autograd::Tensor> calibration_batches(int64_t samples, uint64_t seed) const override {
    TextData t = t_;
    t.seed = seed ^ kCalibrationSeed;
    t.batch = std::min<int64_t>(samples, 32);
    std::vector<autograd::Tensor> out;
    autograd::Tensor x;
    std::vector<int32_t> y;
    for (int64_t done = 0, step = 0; done < samples; done += t.batch, ++step) {
      t.train_batch(step, x, y);
      out.push_back(x);
    }
    return out;
  }
  const TextData* text() const override { return &t_; }
};
}  // namespace

DataKind data_kind(const Recipe& r) {
  if (r.data.dataset == "text" || r.data.dataset == "tokens") return DataKind::kText;
  MXQAT_CHECK(r.data.dataset == "fashion_mnist", "data.dataset '", r.data.dataset,
              "' is not known; known: fashion_mnist, text, tokens");
  return DataKind::kImages;
}

TaskMetric task_metric(const Recipe& r) {
  if (r.data.dataset == "tokens") return {"test_bits_per_token", false};
  return data_kind(r) == DataKind::kText ? TaskMetric{"test_bits_per_byte", false}
                                         : TaskMetric{"test_accuracy", true};
}

DataDims data_dims(const Recipe& r) {
  if (data_kind(r) == DataKind::kText) return {r.model.context, r.model.vocab};
  return {28 * 28, 10};
}

std::unique_ptr<Task> Task::load(const Recipe& r) {
  if (data_kind(r) == DataKind::kText) return std::make_unique<TextTask>(r, task_metric(r));
  return std::make_unique<ImageTask>(r, task_metric(r));
}

}  // namespace mxqat::trainers
