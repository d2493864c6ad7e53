// `mxqat quantize` and `mxqat dequantize`: one tensor through one codec of docs/formats.md, to and
// from a spec §9 HDF5 group (trainers/ckpt_quant). How users quantize single tensors and how
// conformance is checked from outside; not an export of whole models. Every input is checked
// before anything is written, and every output is written atomically (temp file + rename).
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>

#include "quant/codec/codec.h"
#include "trainers/cli/cli_args.h"
#include "trainers/cli/commands.h"
#include "trainers/io/ckpt_quant.h"
#include "trainers/util/json_write.h"
#include "trainers/io/integrity.h"

static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__,
              "raw float32 files are little-endian; this build reads them as native floats");

namespace mxqat::trainers {

namespace {

namespace fs = std::filesystem;
using quant::BlockScheme;
using quant::Codec;
using quant::is_int;

constexpr int64_t kMaxElements = int64_t{1} << 40;  // 4 TiB of float32: far beyond any input
constexpr int kIsolatedTimeoutS = 300;  // reading a foreign HDF5 input in a child process

// "R,K" (or "D0,...,K"): positive integers; the last axis is the block axis (spec §7).
Shape parse_shape(const std::string& text) {
  Shape shape;
  int64_t n = 1;
  for (size_t start = 0; start <= text.size();) {
    const size_t end = std::min(text.find(',', start), text.size());
    const std::string part = text.substr(start, end - start);
    const bool digits = !part.empty() && part.size() <= 15 &&
                        part.find_first_not_of("0123456789") == std::string::npos;
    MXQAT_CHECK(digits, "--shape takes R,K as positive integers (e.g. 3,37; the blocks run along "
                "the last), got '", text, "'");
    const int64_t d = std::stoll(part);
    MXQAT_CHECK(d >= 1, "--shape ", text, " has a zero dimension; every dimension must be >= 1");
    MXQAT_CHECK(n <= kMaxElements / d, "--shape ", text, " is too large (over 2^40 elements)");
    n *= d;
    shape.push_back(d);
    start = end + 1;
  }
  return shape;
}

int64_t parse_group_size(const std::string& text) {
  const bool digits = !text.empty() && text.size() <= 10 &&
                      text.find_first_not_of("0123456789") == std::string::npos;
  const int64_t g = digits ? std::stoll(text) : 0;
  MXQAT_CHECK(g >= 1 && g <= (int64_t{1} << 24), "--group-size takes a positive integer up to "
              "2^24 (e.g. 32; leave it out for one group per row), got '", text, "'");
  return g;
}

float parse_amax(const std::string& text) {
  char* end = nullptr;
  const float a = text.empty() ? NAN : std::strtof(text.c_str(), &end);
  MXQAT_CHECK(!text.empty() && end == text.c_str() + text.size() && std::isfinite(a) && a >= 0.0f,
              "--global-amax takes a finite number >= 0 (spec §5 step 1), got '", text, "'");
  return a;
}


// The codec names whose scheme passes `keep`, for "applies to ... only" messages.
std::string codecs_where(bool (*keep)(BlockScheme)) {
  std::string out;
  for (const std::string& n : Codec::names())
    if (keep(Codec::make(n).block_format().scheme)) out += (out.empty() ? "" : ", ") + n;
  return out;
}

// The codec of --codec with the options that apply to it; an option for another family is an error.
Codec make_codec(const Args& a) {
  const std::string name = *a.get("--codec");
  const BlockScheme scheme = Codec::make(name).block_format().scheme;  // unknown: lists the names
  quant::CodecOptions opt;
  if (auto r = a.get("--scale-rule")) {
    MXQAT_CHECK(scheme == BlockScheme::kMx, "--scale-rule applies to the MX codecs only (",
                codecs_where([](BlockScheme s) { return s == BlockScheme::kMx; }), "), not to ",
                name);
    opt.scale_rule = quant::parse_scale_rule(*r);
  }
  if (auto g = a.get("--group-size")) {
    MXQAT_CHECK(is_int(scheme), "--group-size applies to the INT codecs only (",
                codecs_where(is_int), "); ", name, " has fixed blocks");
    opt.group_size = parse_group_size(*g);
  }
  if (auto g = a.get("--global-amax")) {
    MXQAT_CHECK(scheme == BlockScheme::kNvfp4, "--global-amax applies to nvfp4 only, not to ",
                name);
    opt.global_amax = parse_amax(*g);
  }
  return Codec::make(name, opt);
}

std::vector<float> read_raw_input(const std::string& path, int64_t n, const std::string& shape) {
  std::error_code ec;
  const auto size = fs::file_size(path, ec);
  MXQAT_CHECK(!ec, "cannot read input '", path, "': ", ec.message());
  MXQAT_CHECK(size == static_cast<uintmax_t>(n) * 4, "input '", path, "' has ", size,
              " bytes but --shape ", shape, " needs ", n, " x 4 = ", n * 4,
              " bytes of raw little-endian float32; check --shape");
  std::vector<float> x(static_cast<size_t>(n));
  std::ifstream in(path, std::ios::binary);
  in.read(reinterpret_cast<char*>(x.data()), static_cast<std::streamsize>(n * 4));
  MXQAT_CHECK(in.good(), "cannot read input '", path, "' (", n * 4, " bytes)");
  return x;
}

std::vector<float> read_h5_dataset(const H5Reader& r, const std::string& file,
                                   const std::string& dataset, int64_t n, const std::string& shape) {
  MXQAT_CHECK(r.is_dataset(dataset), "input '", file, ":", dataset, "': no such dataset in '",
              file, "' (name it as FILE.h5:/group/dataset)");
  const DatasetInfo i = r.info(dataset);
  MXQAT_CHECK(i.dtype == DType::kFloat32, "input '", file, ":", dataset, "' holds ",
              dtype_name(i.dtype), "; quantize reads float32 datasets (convert it first)");
  MXQAT_CHECK(autograd::numel_of(i.shape) == n, "input '", file, ":", dataset, "' has shape ",
              autograd::shape_str(i.shape), " (", autograd::numel_of(i.shape),
              " elements) but --shape ", shape, " needs ", n, " elements");
  return r.read_expect<float>(dataset, i.shape);
}

// A file mxqat wrote is checked (integrity block) and read here; any other HDF5 file (h5py,
// another tool) is parsed in a child process, so a hostile file can crash only that child.
std::vector<float> read_h5_input(const std::string& file, const std::string& dataset, int64_t n,
                                 const std::string& shape) {
  if (H5Reader::is_sealed(file))
    return read_h5_dataset(H5Reader::open(file), file, dataset, n, shape);
  const std::string bytes = run_isolated("input '" + file + ":" + dataset + "'", kIsolatedTimeoutS, [&] {
    const std::vector<float> x = read_h5_dataset(H5Reader::open_unsealed(file), file, dataset, n, shape);
    return std::string(reinterpret_cast<const char*>(x.data()), x.size() * sizeof(float));
  });
  MXQAT_CHECK(bytes.size() == static_cast<size_t>(n) * sizeof(float), "input '", file, ":", dataset,
              "': its reader returned ", bytes.size(), " bytes, expected ", n * 4);
  std::vector<float> x(static_cast<size_t>(n));
  std::memcpy(x.data(), bytes.data(), bytes.size());
  return x;
}

// Throws naming the first NaN/Inf element of the [R, K] input.
void check_finite_input(const std::vector<float>& x, int64_t K, const std::string& input) {
  for (size_t i = 0; i < x.size(); ++i)
    MXQAT_CHECK(std::isfinite(x[i]), "input '", input, "' holds ", x[i], " at element (",
                static_cast<int64_t>(i) / K, ", ", static_cast<int64_t>(i) % K,
                ") of the [R, K] view; quantize takes finite values only (a NaN/Inf gives a NaN "
                "group, spec §6 step 4): clean the tensor, or pass --allow-nonfinite to encode "
                "it as the spec says");
}

// INPUT is a raw float32 file, or FILE.h5:/dataset (split at the first ":/" whose left side is a
// file, so file names with ':' work).
std::vector<float> read_input(const std::string& input, int64_t n, const std::string& shape) {
  if (fs::is_regular_file(input)) return read_raw_input(input, n, shape);
  MXQAT_CHECK(!fs::exists(input), "input '", input, "' is not a regular file");
  for (size_t pos = input.find(":/"); pos != std::string::npos; pos = input.find(":/", pos + 1))
    if (fs::is_regular_file(input.substr(0, pos)))
      return read_h5_input(input.substr(0, pos), input.substr(pos + 1), n, shape);
  MXQAT_FAIL("input '", input, "' does not exist (pass a raw little-endian float32 file or "
             "FILE.h5:/dataset)");
  __builtin_unreachable();
}

std::string as_bytes(const std::vector<float>& y) {
  return std::string(reinterpret_cast<const char*>(y.data()), y.size() * sizeof(float));
}

// "out.h5:/blocks.0/fc1.weight", the form INPUT takes.
std::string h5_object(const std::string& file, const std::string& name) {
  return file + ":" + (name.rfind('/', 0) == 0 ? "" : "/") + name;
}

std::string required(const Args& a, const std::string& command, const char* flag) {
  MXQAT_CHECK(a.has(flag), "mxqat ", command, ": ", flag, " is required (see 'mxqat ", command,
              " --help')");
  return *a.get(flag);
}

}  // namespace

int cmd_quantize(const std::vector<std::string>& argv) {
  Args a("quantize", argv,
         {{"--codec", true}, {"--scale-rule", true}, {"--group-size", true},
          {"--global-amax", true}, {"--in", true}, {"--shape", true}, {"--out", true},
          {"--name", true}, {"--dequant", true}, {"--allow-nonfinite", false}},
         0, 0);
  for (const char* flag : {"--codec", "--in", "--shape", "--out"}) required(a, "quantize", flag);
  const Codec codec = make_codec(a);
  const std::string shape_text = *a.get("--shape"), out = *a.get("--out");
  const std::string name = a.get_or("--name", "tensor"), dequant = a.get_or("--dequant", "");
  std::error_code ec;
  MXQAT_CHECK(dequant.empty() || fs::weakly_canonical(dequant, ec) != fs::weakly_canonical(out, ec),
              "--dequant and --out name the same file '", out, "'; give them different names");
  const Shape shape = parse_shape(shape_text);
  const int64_t K = shape.back(), R = autograd::numel_of(shape) / K;
  // A ragged last group is stored padded to the group size: refuse a group so much larger than
  // the row that the padding, not the data, would fill memory.
  const int64_t padded = codec.num_blocks(K) * codec.block_size(K);
  MXQAT_CHECK(padded <= 2 * K + 1024, "--group-size ", codec.block_size(K), " pads each row of ",
              K, " elements (the last --shape dimension) to ", padded, " codes; give a group size "
              "of at most ", std::max<int64_t>(K, 1024), ", or leave it out for one group per row");
  const std::vector<float> x = read_input(*a.get("--in"), R * K, shape_text);
  if (!a.has("--allow-nonfinite")) check_finite_input(x, K, *a.get("--in"));

  const quant::EncodedTensor e = codec.encode(x.data(), R, K);
  std::vector<float> y(x.size());
  codec.fake_quant(x.data(), R, K, y.data());
  H5Writer w = H5Writer::create(out);
  write_quantized(w, name, e, shape);
  if (!dequant.empty()) write_file_atomic(dequant, as_bytes(y));
  try {
    w.commit();
  } catch (...) {
    if (!dequant.empty()) fs::remove(dequant);  // both outputs or neither
    throw;
  }
  const int64_t bytes = quant::encoded_bytes(e);
  char line[192];
  std::snprintf(line, sizeof line,
                "%lld bytes of codes and scales (%.3f bits/element), SQNR %.2f dB", (long long)bytes,
                8.0 * static_cast<double>(bytes) / static_cast<double>(R * K),
                quant::sqnr_db(x.data(), y.data(), R * K));
  std::cout << codec.name() << " " << autograd::shape_str(shape) << " -> " << h5_object(out, name)
            << "  " << line << (dequant.empty() ? "" : "  dequant -> " + dequant) << "\n";
  return 0;
}

int cmd_dequantize(const std::vector<std::string>& argv) {
  Args a("dequantize", argv, {{"--name", true}, {"--out", true}}, 1, 1);
  const std::string out = required(a, "dequantize", "--out");
  const std::string path = a.positional()[0], name = a.get_or("--name", "tensor");
  // "codec\nshape\n" then the float32 values: what a child returns for a foreign file.
  const auto decode = [&](const H5Reader& r) {
    Shape shape;
    const quant::EncodedTensor e = read_quantized(r, name, &shape);
    std::vector<float> y(static_cast<size_t>(e.rows * e.cols));
    decoder_for(e).decode(e, y.data());
    return e.codec + "\n" + autograd::shape_str(shape) + "\n" + as_bytes(y);
  };
  const std::string result =
      H5Reader::is_sealed(path)
          ? decode(H5Reader::open(path))
          : run_isolated("'" + path + "'", kIsolatedTimeoutS,
                         [&] { return decode(H5Reader::open_unsealed(path)); });
  const size_t nl1 = result.find('\n'), nl2 = result.find('\n', nl1 + 1);
  MXQAT_CHECK(nl1 != std::string::npos && nl2 != std::string::npos, "dequantize '", path,
              "': its reader returned no result");
  const std::string bytes = result.substr(nl2 + 1);
  write_file_atomic(out, bytes);
  std::cout << result.substr(0, nl1) << " " << result.substr(nl1 + 1, nl2 - nl1 - 1) << " "
            << h5_object(path, name) << " -> " << out << " (" << bytes.size()
            << " bytes of float32)\n";
  return 0;
}

}  // namespace mxqat::trainers
