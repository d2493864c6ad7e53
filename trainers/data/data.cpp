// Fashion-MNIST loading (zlib), splits and the seeded batch order.
#include "trainers/data/data.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <numeric>

#include "trainers/recipe/recipe.h"
#include "trainers/util/files.h"

namespace mxqat::trainers {

namespace {
uint64_t splitmix64(uint64_t& s) {
  uint64_t z = (s += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
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

namespace {
constexpr const char* kReinstall =
    "; reinstall the dataset package (apt-get install --reinstall dataset-fashion-mnist)";
constexpr int64_t kMaxIdxBytes = int64_t{1} << 31;  // 2 GiB: Fashion-MNIST's largest is 47 MB

// A gzip stream read at most `n` bytes at a time, so inflation never exceeds what is asked for
// (a gzip bomb cannot grow memory past the IDX header's claim, itself bounded).
class GzReader {
 public:
  explicit GzReader(const std::string& path) : path_(path) {
    regular_file_size(path, "Fashion-MNIST file");  // a FIFO or device would block or never end
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    MXQAT_CHECK(fd >= 0, "cannot open ", path, ": ", std::strerror(errno));
    struct stat st;
    if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {  // the name may have changed since
      ::close(fd);
      MXQAT_FAIL(path, " is not a regular file; give the dataset's .gz files");
    }
    f_ = gzdopen(fd, "rb");
    if (!f_) ::close(fd);
    MXQAT_CHECK(f_ != nullptr, "cannot open ", path, " as gzip");
  }
  ~GzReader() { gzclose(f_); }
  GzReader(const GzReader&) = delete;
  GzReader& operator=(const GzReader&) = delete;

  // Reads up to n bytes; fewer only at the end of the data. Throws on corrupt data.
  size_t read(uint8_t* out, size_t n) {
    size_t done = 0;
    while (done < n) {
      const unsigned chunk = static_cast<unsigned>(std::min<size_t>(n - done, size_t{1} << 30));
      const int got = gzread(f_, out + done, chunk);
      if (got <= 0) {
        int err = Z_OK;
        const char* msg = gzerror(f_, &err);
        MXQAT_CHECK(got == 0 && err == Z_OK, path_, ": corrupt or truncated gzip data (",
                    msg ? msg : "", ")", kReinstall);
        break;
      }
      done += static_cast<size_t>(got);
    }
    return done;
  }

 private:
  std::string path_;
  gzFile f_ = nullptr;
};
}  // namespace

std::vector<uint8_t> read_idx(const std::string& path, int expected_ndim, std::vector<int64_t>& dims) {
  GzReader in(path);
  uint8_t head[4 + 4 * 3];
  MXQAT_CHECK(in.read(head, 4) == 4, path, ": too short for an IDX file", kReinstall);
  const uint32_t magic = be32(head);
  const int ndim = static_cast<int>(magic & 0xFF);
  MXQAT_CHECK((magic >> 8) == 0x08 && ndim == expected_ndim, path, ": bad IDX magic 0x", std::hex,
              magic, std::dec, " (expected unsigned-byte data with ", expected_ndim, " dimensions)");
  const size_t dim_bytes = 4 * static_cast<size_t>(ndim);
  MXQAT_CHECK(in.read(head + 4, dim_bytes) == dim_bytes, path, ": truncated IDX header", kReinstall);
  dims.clear();
  int64_t count = 1;
  for (int i = 0; i < ndim; ++i) {
    dims.push_back(be32(head + 4 + 4 * i));
    MXQAT_CHECK(dims.back() >= 1 && count <= kMaxIdxBytes / dims.back(), path, ": IDX header "
                "claims dimension ", i, " = ", dims.back(), " (", count, " x ", dims.back(),
                " bytes in all); at most ", kMaxIdxBytes, " bytes of non-empty data are read",
                kReinstall);
    count *= dims.back();
  }
  std::vector<uint8_t> data(static_cast<size_t>(count));
  const size_t got = in.read(data.data(), data.size());
  uint8_t extra = 0;
  MXQAT_CHECK(got == data.size() && in.read(&extra, 1) == 0, path, ": header promises ", count,
              " bytes of data but the file holds ", got == data.size() ? "more" : std::to_string(got),
              kReinstall);
  return data;
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
