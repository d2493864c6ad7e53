// Fashion-MNIST loading (zlib), splits and the seeded batch order.
#include "trainers/data/data.h"

#include <zlib.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <numeric>

#include "trainers/recipe/recipe.h"

namespace mxqat::trainers {

namespace {
uint64_t splitmix64(uint64_t& s) {
  uint64_t z = (s += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

std::vector<uint8_t> gunzip_file(const std::string& path) {
  gzFile f = gzopen(path.c_str(), "rb");
  MXQAT_CHECK(f != nullptr, "cannot open ", path);
  std::vector<uint8_t> out;
  uint8_t buf[1 << 16];
  int n;
  while ((n = gzread(f, buf, sizeof buf)) > 0) out.insert(out.end(), buf, buf + n);
  int err = 0;
  const char* msg = gzerror(f, &err);
  const bool ok = n == 0 && err == Z_OK;
  std::string what = msg ? msg : "";
  gzclose(f);
  MXQAT_CHECK(ok, path, ": corrupt or truncated gzip data (", what,
              "); reinstall the dataset package (apt-get install --reinstall dataset-fashion-mnist)");
  return out;
}

uint32_t be32(const uint8_t* p) {
  return (uint32_t(p[0]) << 24) | (uint32_t(p[1]) << 16) | (uint32_t(p[2]) << 8) | p[3];
}
}  // namespace

std::vector<int64_t> seeded_permutation(int64_t n, uint64_t seed) {
  std::vector<int64_t> p(static_cast<size_t>(n));
  std::iota(p.begin(), p.end(), 0);
  uint64_t s = seed;
  for (int64_t i = n - 1; i > 0; --i) {
    const int64_t j = static_cast<int64_t>(splitmix64(s) % static_cast<uint64_t>(i + 1));
    std::swap(p[static_cast<size_t>(i)], p[static_cast<size_t>(j)]);
  }
  return p;
}

std::vector<uint8_t> read_idx(const std::string& path, int expected_ndim, std::vector<int64_t>& dims) {
  std::vector<uint8_t> raw = gunzip_file(path);
  MXQAT_CHECK(raw.size() >= 4, path, ": too short for an IDX file (", raw.size(), " bytes)");
  const uint32_t magic = be32(raw.data());
  const int ndim = static_cast<int>(magic & 0xFF);
  MXQAT_CHECK((magic >> 8) == 0x08 && ndim == expected_ndim, path, ": bad IDX magic 0x", std::hex,
              magic, std::dec, " (expected unsigned-byte data with ", expected_ndim, " dimensions)");
  MXQAT_CHECK(raw.size() >= 4 + 4 * static_cast<size_t>(ndim), path, ": truncated IDX header");
  dims.clear();
  int64_t count = 1;
  for (int i = 0; i < ndim; ++i) {
    dims.push_back(be32(raw.data() + 4 + 4 * i));
    count *= dims.back();
  }
  const size_t header = 4 + 4 * static_cast<size_t>(ndim);
  MXQAT_CHECK(raw.size() - header == static_cast<size_t>(count), path, ": header promises ", count,
              " bytes of data but the file holds ", raw.size() - header);
  return std::vector<uint8_t>(raw.begin() + static_cast<long>(header), raw.end());
}

void Dataset::gather(const std::vector<int64_t>& idx, autograd::Tensor& xb,
                     std::vector<int32_t>& yb) const {
  const int64_t f = x.cols();
  if (xb.shape() != autograd::Shape{static_cast<int64_t>(idx.size()), f})
    xb = autograd::Tensor({static_cast<int64_t>(idx.size()), f});
  yb.resize(idx.size());
  for (size_t i = 0; i < idx.size(); ++i) {
    std::memcpy(xb.data() + static_cast<int64_t>(i) * f, x.data() + idx[i] * f, sizeof(float) * f);
    yb[i] = y[static_cast<size_t>(idx[i])];
  }
}

namespace {
Dataset read_split(const std::string& dir, const std::string& prefix, int64_t limit) {
  const std::string ip = dir + "/" + prefix + "-images-idx3-ubyte.gz";
  const std::string lp = dir + "/" + prefix + "-labels-idx1-ubyte.gz";
  for (const auto& p : {ip, lp})
    MXQAT_CHECK(std::filesystem::exists(p), "Fashion-MNIST file ", p,
                " not found; install Debian's package with 'apt-get install dataset-fashion-mnist' "
                "(or run scripts/install_deps.sh), or set data.dir in the recipe");
  std::vector<int64_t> idims, ldims;
  std::vector<uint8_t> img = read_idx(ip, 3, idims);
  std::vector<uint8_t> lab = read_idx(lp, 1, ldims);
  MXQAT_CHECK(idims[0] == ldims[0], ip, " has ", idims[0], " images but ", lp, " has ", ldims[0],
              " labels");
  const int64_t n = limit > 0 ? std::min(limit, idims[0]) : idims[0];
  const int64_t f = idims[1] * idims[2];
  Dataset d;
  d.num_classes = 10;
  d.x = autograd::Tensor({n, f});
  d.y.resize(static_cast<size_t>(n));
  for (int64_t i = 0; i < n * f; ++i) d.x[i] = static_cast<float>(img[static_cast<size_t>(i)]) / 255.f;
  for (int64_t i = 0; i < n; ++i) {
    MXQAT_CHECK(lab[static_cast<size_t>(i)] < 10, lp, ": label ", int(lab[static_cast<size_t>(i)]),
                " at index ", i, " is not a class 0..9");
    d.y[static_cast<size_t>(i)] = lab[static_cast<size_t>(i)];
  }
  return d;
}

Dataset take(const Dataset& d, const std::vector<int64_t>& idx) {
  Dataset out;
  out.num_classes = d.num_classes;
  d.gather(idx, out.x, out.y);
  return out;
}
}  // namespace

Splits load_fashion_mnist(const DataCfg& cfg, uint64_t seed) {
  MXQAT_CHECK(cfg.dataset == "fashion_mnist", "data.dataset '", cfg.dataset,
              "' is not supported here; known: fashion_mnist");
  Dataset full = read_split(cfg.dir, "train", cfg.train_limit);
  Splits s;
  s.test = read_split(cfg.dir, "t10k", cfg.test_limit);
  const int64_t n = full.size();
  MXQAT_CHECK(cfg.val_size >= 0 && cfg.val_size < n, "data.val_size = ", cfg.val_size,
              " leaves no training data out of ", n, " images; lower it");
  std::vector<int64_t> perm = seeded_permutation(n, seed ^ 0xDA7A5EEDull);
  std::vector<int64_t> tr(perm.begin(), perm.end() - cfg.val_size), va(perm.end() - cfg.val_size, perm.end());
  std::sort(tr.begin(), tr.end());
  std::sort(va.begin(), va.end());
  s.train = take(full, tr);
  s.val = take(full, va);
  if (cfg.normalize) {  // statistics of the training split only, in double, fixed order
    double sum = 0, sq = 0;
    for (int64_t i = 0; i < s.train.x.size(); ++i) sum += s.train.x[i], sq += double(s.train.x[i]) * s.train.x[i];
    const double cnt = static_cast<double>(s.train.x.size());
    const float mean = static_cast<float>(sum / cnt);
    const float inv_std = static_cast<float>(1.0 / std::sqrt(std::max(sq / cnt - (sum / cnt) * (sum / cnt), 1e-12)));
    for (Dataset* d : {&s.train, &s.val, &s.test}) d->x.arr() = (d->x.arr() - mean) * inv_std;
  }
  s.description = "fashion_mnist: " + std::to_string(s.train.size()) + " train, " +
                  std::to_string(s.val.size()) + " val, " + std::to_string(s.test.size()) + " test";
  return s;
}

BatchOrder::BatchOrder(int64_t n, int64_t batch, uint64_t seed) : n_(n), batch_(batch), seed_(seed) {
  MXQAT_CHECK(batch > 0 && n >= batch, "batch size ", batch, " is larger than the ", n,
              " training examples; lower data.batch_size");
}

std::vector<int64_t> BatchOrder::batch(int64_t step) {
  const int64_t spe = steps_per_epoch(), epoch = step / spe, pos = step % spe;
  if (epoch != cached_epoch_) {
    perm_ = seeded_permutation(n_, seed_ * 0x9E3779B97F4A7C15ull + static_cast<uint64_t>(epoch));
    cached_epoch_ = epoch;
  }
  return std::vector<int64_t>(perm_.begin() + pos * batch_, perm_.begin() + (pos + 1) * batch_);
}


}  // namespace mxqat::trainers
