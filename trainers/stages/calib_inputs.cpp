// The calibration forward passes, data-parallel (calib_inputs.h).
#include "trainers/stages/calib_inputs.h"

#include <algorithm>
#include <array>
#include <climits>
#include <cstring>

#include "autograd/error.h"
#include "autograd/var.h"

namespace mxqat::trainers {

namespace {
using autograd::Tensor;

constexpr size_t kMaxDims = 8;
using Header = std::array<int64_t, kMaxDims + 1>;  // dims (-1: no item this round), then the shape

// Every process's `mine` (bytes[r] bytes from process r) into `all`, concatenated in rank order,
// in allgatherv calls of at most `cap` bytes in all.
void gather_bytes(const char* mine, char* all, const std::vector<size_t>& bytes, size_t cap, Dist& d) {
  const size_t n = bytes.size();
  size_t total = 0;
  for (size_t b : bytes) total += b;
  if (total <= cap) return d.allgatherv(mine, all, bytes);
  const size_t piece = std::max<size_t>(1, cap / n);  // per process and call
  std::vector<size_t> offset(n, 0);
  for (size_t r = 1; r < n; ++r) offset[r] = offset[r - 1] + bytes[r - 1];
  std::vector<char> buf;
  for (size_t done = 0;; done += piece) {
    std::vector<size_t> part(n, 0);
    size_t sum = 0;
    for (size_t r = 0; r < n; ++r) sum += part[r] = bytes[r] > done ? std::min(piece, bytes[r] - done) : 0;
    if (sum == 0) return;
    buf.resize(sum);
    const size_t me = static_cast<size_t>(d.rank());
    d.allgatherv(part[me] > 0 ? mine + done : mine, buf.data(), part);
    size_t at = 0;
    for (size_t r = 0; r < n; ++r) {
      if (part[r] > 0) std::memcpy(all + offset[r] + done, buf.data() + at, part[r]);
      at += part[r];
    }
  }
}
}  // namespace

void for_each_in_order(int64_t m, const std::function<Tensor(int64_t)>& compute,
                       const std::function<void(int64_t, const Tensor&)>& consume, Dist& d,
                       size_t max_call_bytes) {
  const int n = d.size();
  if (n == 1) {  // one process: no copies
    for (int64_t i = 0; i < m; ++i) consume(i, compute(i));
    return;
  }
  const size_t cap = max_call_bytes > 0 ? max_call_bytes : size_t(INT_MAX);
  const size_t nn = static_cast<size_t>(n);
  for (int64_t round = 0; round < m; round += n) {
    const int64_t own = round + d.rank();
    Tensor mine;
    Header h;
    h.fill(0);
    h[0] = -1;
    if (own < m) {
      mine = compute(own);
      MXQAT_CHECK(mine.shape().size() <= kMaxDims, "calibration item ", own, " has ", mine.shape().size(),
                  " dimensions; at most ", kMaxDims, " can be gathered across processes");
      h[0] = static_cast<int64_t>(mine.shape().size());
      std::copy(mine.shape().begin(), mine.shape().end(), h.begin() + 1);
    }
    std::vector<Header> heads(nn);
    d.allgatherv(h.data(), heads.data(), std::vector<size_t>(nn, sizeof(Header)));
    std::vector<size_t> bytes(nn, 0);
    std::vector<autograd::Shape> shapes(nn);
    for (size_t r = 0; r < nn; ++r) {
      if (heads[r][0] < 0) continue;
      shapes[r].assign(heads[r].begin() + 1, heads[r].begin() + 1 + heads[r][0]);
      int64_t count = 1;
      for (int64_t s : shapes[r]) count *= s;
      bytes[r] = static_cast<size_t>(count) * sizeof(float);
    }
    size_t total = 0;
    for (size_t b : bytes) total += b;
    std::vector<char> all(total);
    gather_bytes(reinterpret_cast<const char*>(mine.data()), all.data(), bytes, cap, d);
    size_t at = 0;
    for (size_t r = 0; r < nn; ++r) {
      const int64_t i = round + static_cast<int64_t>(r);
      if (heads[r][0] < 0) continue;
      if (i == own) {
        consume(i, mine);
      } else {
        Tensor t = Tensor::uninit(shapes[r]);
        if (bytes[r] > 0) std::memcpy(t.data(), all.data() + at, bytes[r]);
        consume(i, t);
      }
      at += bytes[r];
    }
  }
}

void for_each_calibration_input(layers::Module& model, quant::QuantGemm& q, const std::vector<Tensor>& calib,
                                const std::function<void(Tensor&)>& prepare,
                                const std::function<void(int64_t, const Tensor&)>& f, Dist& d) {
  autograd::NoGradGuard no_grad;
  q.set_capture(true);
  for_each_in_order(
      static_cast<int64_t>(calib.size()),
      [&](int64_t i) {
        model.forward(autograd::Var(calib[static_cast<size_t>(i)]));
        Tensor x = q.captured().input;
        if (prepare) prepare(x);
        return x;
      },
      f, d);
  q.set_capture(false);
}

void broadcast_text(std::string& text, Dist& d) {
  if (d.size() == 1) return;
  uint64_t len = text.size();
  d.broadcast(&len, sizeof len, 0);
  text.resize(static_cast<size_t>(len));
  if (len > 0) d.broadcast(text.data(), text.size(), 0);
}

}  // namespace mxqat::trainers
