// Images vs text behind one interface for ptq, qat, verify and run.
#include "trainers/data/task.h"

#include <algorithm>

#include "trainers/data/text_data.h"

namespace mxqat::trainers {

namespace {
bool is_text(const Recipe& r) { return r.data.dataset == "text"; }
}  // namespace

TaskMetric task_metric(const Recipe& r) {
  return is_text(r) ? TaskMetric{"test_bits_per_byte", false} : TaskMetric{"test_accuracy", true};
}

DataDims data_dims(const Recipe& r) {
  if (is_text(r)) return {r.model.context, r.model.vocab};
  MXQAT_CHECK(r.data.dataset == "fashion_mnist", "data.dataset '", r.data.dataset,
              "' is not known; known: fashion_mnist, text");
  return {28 * 28, 10};
}

double test_metric(const StageSetup& st, layers::Module& m) {
  if (st.text) return bits_per_byte(evaluate_text(m, st.text->test, st.text->context).loss);
  return evaluate(m, st.data.test).accuracy;
}

void for_each_test_batch(const StageSetup& st, int64_t limit,
                         const std::function<void(const autograd::Tensor& x)>& f) {
  autograd::Tensor x;
  std::vector<int32_t> y;
  if (st.text) {
    const int64_t T = st.text->context, total = st.text->windows(st.text->test);
    const int64_t n = limit > 0 ? std::min(limit, total) : total;
    for (int64_t w = 0; w < n; w += 32) {
      text_windows(st.text->test, T, w, std::min<int64_t>(32, n - w), x, y);
      f(x);
    }
    return;
  }
  const Dataset& d = st.data.test;
  const int64_t n = limit > 0 ? std::min(limit, d.size()) : d.size();
  std::vector<int64_t> idx;
  for (int64_t s = 0; s < n; s += 1000) {
    idx.clear();
    for (int64_t i = s; i < std::min(n, s + 1000); ++i) idx.push_back(i);
    d.gather(idx, x, y);
    f(x);
  }
}

std::vector<autograd::Tensor> calibration_batches(const StageSetup& st, int64_t samples, uint64_t seed) {
  std::vector<autograd::Tensor> out;
  autograd::Tensor x;
  std::vector<int32_t> y;
  if (st.text) {  // windows drawn like training batches, from another seed
    TextData t = *st.text;
    t.seed = seed ^ 0x5851F42D4C957F2Dull;
    t.batch = std::min<int64_t>(samples, 32);
    for (int64_t done = 0, step = 0; done < samples; done += t.batch, ++step) {
      t.train_batch(step, x, y);
      out.push_back(x);
    }
    return out;
  }
  const Dataset& train = st.data.train;
  const auto perm = seeded_permutation(train.size(), seed ^ 0x5851F42D4C957F2Dull);
  const int64_t n = std::min(samples, train.size());
  for (int64_t s = 0; s < n; s += 128) {
    std::vector<int64_t> idx(perm.begin() + s, perm.begin() + std::min(n, s + 128));
    train.gather(idx, x, y);
    out.push_back(x);
  }
  return out;
}

}  // namespace mxqat::trainers
