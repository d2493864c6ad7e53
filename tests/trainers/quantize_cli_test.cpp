// `mxqat quantize` / `mxqat dequantize` run as the real executable, and trainers/ckpt_quant (the
// spec §9 group reader/writer): for every codec the stored group matches §9 and Codec::encode bit
// for bit, --dequant equals fake_quant, dequantize reproduces it; every bad input is a clear error
// with no output left behind. The raw HDF5 C API is used only to inspect or damage files.
#include <gtest/gtest.h>
#include <hdf5.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <random>

#include "tests/test_util.h"
#include "trainers/io/ckpt_quant.h"

namespace mxqat::trainers {
namespace {

namespace fs = std::filesystem;
using quant::BlockScheme;
using quant::Codec;
using quant::EncodedTensor;
using quant::is_int;
using mxqat::testing::error_of;
using mxqat::testing::CliResult;
using mxqat::testing::run_cli;

constexpr int64_t kR = 3, kK = 37;  // ragged K: 37 = 32 + 5 = 2 x 16 + 5


BlockScheme scheme_of(const std::string& codec) { return Codec::make(codec).block_format().scheme; }

// Normal values with an outlier, an all-zero stretch and a NaN in the ragged tail of row 1, so
// blocks differ in scale and one block (group) is non-finite.
std::vector<float> random_tensor(int64_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> x(static_cast<size_t>(n));
  for (float& v : x) v = normal(rng);
  x[3] = 17.5f;
  x[static_cast<size_t>(n) - 2] = -0.003f;
  for (size_t i = 40; i < 56 && i < x.size(); ++i) x[i] = 0.0f;
  if (x.size() > 70) x[70] = std::nanf("");
  return x;
}

std::string bytes_of(const void* p, size_t n) {
  return std::string(static_cast<const char*>(p), n);
}
std::string bytes_of(float f) { return bytes_of(&f, 4); }
std::string bytes_of(const std::vector<float>& v) { return bytes_of(v.data(), v.size() * 4); }

// {class, size} of an attribute as stored, read with the raw C API.
std::pair<H5T_class_t, size_t> attr_type(const std::string& file, const std::string& object,
                                         const std::string& name) {
  hid_t f = H5Fopen(file.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
  hid_t a = H5Aopen_by_name(f, object.c_str(), name.c_str(), H5P_DEFAULT, H5P_DEFAULT);
  hid_t t = H5Aget_type(a);
  std::pair<H5T_class_t, size_t> out{H5Tget_class(t), H5Tget_size(t)};
  H5Tclose(t);
  H5Aclose(a);
  H5Fclose(f);
  return out;
}

// Edits a closed file with the raw C API (to damage or retype one object).
void edit_h5(const std::string& path, const std::function<void(hid_t)>& fn) {
  H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);
  hid_t f = H5Fopen(path.c_str(), H5F_ACC_RDWR, H5P_DEFAULT);
  ASSERT_GE(f, 0) << path;
  fn(f);
  H5Fclose(f);
}

void expect_same(const EncodedTensor& a, const EncodedTensor& b, const std::string& what) {
  EXPECT_EQ(a.codec, b.codec) << what;
  EXPECT_EQ(a.rows, b.rows) << what;
  EXPECT_EQ(a.cols, b.cols) << what;
  EXPECT_EQ(a.block_size, b.block_size) << what;
  EXPECT_EQ(a.codes, b.codes) << what;
  EXPECT_EQ(a.scale_codes, b.scale_codes) << what;
  EXPECT_EQ(bytes_of(a.scales.data(), a.scales.size() * 4),
            bytes_of(b.scales.data(), b.scales.size() * 4))
      << what;  // NaN scales included
  EXPECT_EQ(a.zero_points, b.zero_points) << what;
  EXPECT_EQ(bytes_of(a.global_amax), bytes_of(b.global_amax)) << what;
  EXPECT_EQ(bytes_of(a.global_encode_scale), bytes_of(b.global_encode_scale)) << what;
  EXPECT_EQ(bytes_of(a.global_decode_scale), bytes_of(b.global_decode_scale)) << what;
  if (scheme_of(a.codec) == BlockScheme::kMx) {
    EXPECT_EQ(a.scale_rule, b.scale_rule) << what;
  }
}

class QuantizeCli : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    dir_ = fs::temp_directory_path() /
           ("mxqat_quantize_" + std::to_string(::getpid()) + "_" + info->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::string file(const std::string& name) const { return (dir_ / name).string(); }
  static std::string slurp(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(in), {});
  }
  std::string write_raw(const std::string& name, const std::vector<float>& x) const {
    std::ofstream(file(name), std::ios::binary) << bytes_of(x);
    return file(name);
  }
  std::vector<std::string> entries() const {
    std::vector<std::string> names;
    for (const auto& e : fs::directory_iterator(dir_)) names.push_back(e.path().filename());
    std::sort(names.begin(), names.end());
    return names;
  }
  // A failed run: non-zero exit, "error", every needle, and the directory unchanged.
  void expect_refused(const std::string& args, std::initializer_list<const char*> needles) {
    const std::vector<std::string> before = entries();
    const CliResult r = run_cli(args);
    EXPECT_NE(r.code, 0) << args << "\n" << r.out;
    EXPECT_NE(r.out.find("error"), std::string::npos) << r.out;
    for (const char* n : needles)
      EXPECT_NE(r.out.find(n), std::string::npos) << "missing '" << n << "' in: " << r.out;
    EXPECT_EQ(entries(), before) << "a failed run left files behind: " << args;
  }

  // Attribute types as stored: ints as integers, strings as strings, NVFP4 scalars as 32-bit
  // floats.
  static void expect_stored_types(const std::string& path, const std::string& g, BlockScheme s) {
    for (const char* a : {"spec_version", "block_axis", "block_size", "element_bits", "shape"})
      EXPECT_EQ(attr_type(path, g, a).first, H5T_INTEGER) << a;
    for (const char* a : {"codec", "packing"}) EXPECT_EQ(attr_type(path, g, a).first, H5T_STRING);
    if (s == BlockScheme::kMx) {
      EXPECT_EQ(attr_type(path, g, "scale_rule").first, H5T_STRING);
    }
    if (s != BlockScheme::kNvfp4) return;
    for (const char* a : {"global_amax", "global_encode_scale", "global_decode_scale"})
      EXPECT_EQ(attr_type(path, g, a), std::make_pair(H5T_FLOAT, size_t{4})) << a;
  }

  // Checks group g of file against spec §9 and against `expected` (Codec::encode of the input).
  void expect_spec_group(const std::string& path, const std::string& g,
                         const EncodedTensor& expected, const Shape& shape) {
    SCOPED_TRACE(expected.codec + " " + g);
    const BlockScheme scheme = scheme_of(expected.codec);
    const Codec c = decoder_for(expected);
    const int64_t nb = c.num_blocks(shape.back()), bpr = c.bytes_per_row(shape.back());
    expect_stored_types(path, g, scheme);  // the raw C API, while no H5Reader holds the file
    H5Reader r = H5Reader::open(path);
    ASSERT_TRUE(r.is_group(g));
    std::vector<std::string> datasets = {"codes", "scales"};
    if (scheme == BlockScheme::kIntAsym) datasets.push_back("zero_points");
    EXPECT_EQ(r.list(g), datasets);
    EXPECT_EQ(r.info(g + "/codes").dtype, DType::kUInt8);
    EXPECT_EQ(r.info(g + "/codes").shape, (Shape{expected.rows, bpr}));
    EXPECT_EQ(r.info(g + "/scales").dtype, is_int(scheme) ? DType::kFloat32 : DType::kUInt8);
    EXPECT_EQ(r.info(g + "/scales").shape, (Shape{expected.rows, nb}));
    EXPECT_EQ(r.read<uint8_t>(g + "/codes"), expected.codes);
    if (is_int(scheme)) {
      EXPECT_EQ(bytes_of(r.read<float>(g + "/scales")), bytes_of(expected.scales));
    } else {
      EXPECT_EQ(r.read<uint8_t>(g + "/scales"), expected.scale_codes);
    }
    if (scheme == BlockScheme::kIntAsym) {
      EXPECT_EQ(r.info(g + "/zero_points").shape, (Shape{expected.rows, nb}));
      EXPECT_EQ(r.read<uint8_t>(g + "/zero_points"), expected.zero_points);
    }
    std::vector<std::string> attrs = {"block_axis", "block_size", "codec",       "element_bits",
                                      "packing",    "shape",      "spec_version"};
    if (scheme == BlockScheme::kMx) attrs.push_back("scale_rule");
    if (scheme == BlockScheme::kNvfp4)
      for (const char* a : {"global_amax", "global_decode_scale", "global_encode_scale"})
        attrs.push_back(a);
    std::sort(attrs.begin(), attrs.end());
    EXPECT_EQ(r.list_attrs(g), attrs);
    EXPECT_EQ(r.attr_string(g, "codec"), expected.codec);
    EXPECT_EQ(r.attr_i64(g, "spec_version"), 1);
    EXPECT_EQ(r.attr_i64s(g, "shape"), shape);
    EXPECT_EQ(r.attr_i64(g, "block_axis"), static_cast<int64_t>(shape.size()) - 1);
    EXPECT_EQ(r.attr_i64(g, "block_size"), expected.block_size);
    EXPECT_EQ(r.attr_i64(g, "element_bits"), c.element_bits());
    EXPECT_EQ(r.attr_string(g, "packing"), "lsb_first");
    if (scheme == BlockScheme::kMx) {
      EXPECT_EQ(r.attr_string(g, "scale_rule"), quant::scale_rule_name(expected.scale_rule));
    }
    if (scheme == BlockScheme::kNvfp4) {
      EXPECT_EQ(bytes_of(expected.global_amax), bytes_of(r.attr_f32(g, "global_amax")));
      EXPECT_EQ(bytes_of(expected.global_decode_scale),
                bytes_of(r.attr_f32(g, "global_decode_scale")));
    }
    Shape read_shape;
    expect_same(read_quantized(r, g, &read_shape), expected, "read_quantized");
    EXPECT_EQ(read_shape, shape);
  }

  // quantize -> checks -> --dequant == fake_quant == decode == `mxqat dequantize`.
  void round_trip(const std::string& codec, const std::string& options, quant::CodecOptions opt,
                  const Shape& shape = {kR, kK}, const std::string& name = "") {
    SCOPED_TRACE(codec + " " + options);
    const int64_t n = autograd::numel_of(shape), R = n / shape.back();
    const std::vector<float> x = random_tensor(n, static_cast<uint32_t>(codec.size() * 7 + n));
    const std::string in = write_raw("x.f32", x), out = file(codec + ".h5");
    std::string shape_arg;
    for (int64_t d : shape) shape_arg += (shape_arg.empty() ? "" : ",") + std::to_string(d);
    std::string args = "quantize --codec " + codec + " " + options + " --in " + in + " --shape " +
                       shape_arg + " --out " + out + " --dequant " + file("y.f32");
    if (!name.empty()) args += " --name " + name;
    const CliResult q = run_cli(args);
    ASSERT_EQ(q.code, 0) << args << "\n" << q.out;
    EXPECT_NE(q.out.find(codec), std::string::npos) << q.out;
    EXPECT_NE(q.out.find("SQNR"), std::string::npos) << q.out;
    const Codec c = Codec::make(codec, opt);
    const EncodedTensor expected = c.encode(x.data(), R, shape.back());
    const std::string g = name.empty() ? "tensor" : name;
    expect_spec_group(out, g, expected, shape);
    std::vector<float> fq(x.size()), dec(x.size());
    c.fake_quant(x.data(), R, shape.back(), fq.data());
    const std::string y = slurp(file("y.f32"));
    EXPECT_EQ(y, bytes_of(fq)) << "--dequant differs from Codec::fake_quant";
    EXPECT_NE(y, bytes_of(x)) << "the codec changed nothing: the test input is too easy";
    {
      H5Reader r = H5Reader::open(out);
      const EncodedTensor e = read_quantized(r, g);
      decoder_for(e).decode(e, dec.data());
    }
    EXPECT_EQ(bytes_of(dec), y) << "decode of the stored group differs from --dequant";
    const CliResult d = run_cli("dequantize " + out + (name.empty() ? "" : " --name " + name) +
                                " --out " + file("z.f32"));
    ASSERT_EQ(d.code, 0) << d.out;
    EXPECT_EQ(slurp(file("z.f32")), y) << "mxqat dequantize differs from --dequant";
  }

  fs::path dir_;
};

TEST_F(QuantizeCli, EveryCodecRoundTripsAsSpec9) {
  ASSERT_EQ(Codec::names().size(), 11u);
  for (const std::string& codec : Codec::names()) round_trip(codec, "", {});
}

TEST_F(QuantizeCli, ScaleRuleGroupSizeAndGlobalAmaxReachTheCodec) {
  const std::vector<float> x = random_tensor(kR * kK, 5);
  auto differ = [&](const std::string& codec, quant::CodecOptions a, quant::CodecOptions b) {
    const EncodedTensor ea = Codec::make(codec, a).encode(x.data(), kR, kK);
    const EncodedTensor eb = Codec::make(codec, b).encode(x.data(), kR, kK);
    return ea.codes != eb.codes || ea.scale_codes != eb.scale_codes ||
           bytes_of(ea.scales.data(), ea.scales.size() * 4) !=
               bytes_of(eb.scales.data(), eb.scales.size() * 4);
  };
  // Each option changes the encoding of this input, so ignoring it would fail round_trip.
  const quant::CodecOptions rceil{quant::ScaleRule::kRceil, 0, std::nullopt};
  const quant::CodecOptions g16{quant::ScaleRule::kFloor, 16, std::nullopt};
  const quant::CodecOptions amax{quant::ScaleRule::kFloor, 0, 40.0f};
  for (const char* codec : {"mxfp4", "mxfp8_e4m3", "mxfp6_e2m3"}) {
    ASSERT_TRUE(differ(codec, {}, rceil)) << codec;
    round_trip(codec, "--scale-rule rceil", rceil);
  }
  for (const char* codec : {"int8_sym", "int4_asym"}) {
    ASSERT_TRUE(differ(codec, {}, g16)) << codec;
    round_trip(codec, "--group-size 16", g16);
  }
  ASSERT_TRUE(differ("nvfp4", {}, amax));
  round_trip("nvfp4", "--global-amax 40", amax);
  round_trip("int8_asym", "--group-size=64", {quant::ScaleRule::kFloor, 64, std::nullopt});
}

TEST_F(QuantizeCli, ParameterNamesAndHigherRankShapes) {
  round_trip("mxfp4", "", {}, {kR, kK}, "blocks.0/fc1.weight");
  round_trip("int4_sym", "", {}, {2, 3, kK}, "/head.weight");
}

TEST_F(QuantizeCli, Hdf5DatasetInputMatchesRawInput) {
  const std::vector<float> x = random_tensor(kR * kK, 9);
  {
    H5Writer w = H5Writer::create(file("in.h5"));
    w.write("/params/fc1.weight", x, {kR, kK});
    w.write("/params/f64", std::vector<double>(kR * kK, 1.0), {kR, kK});
    w.commit();
  }
  const std::string tail = " --shape 3,37 --codec nvfp4 --dequant ";
  ASSERT_EQ(run_cli("quantize --in " + write_raw("x.f32", x) + tail + file("a.f32") + " --out " +
                    file("a.h5"))
                .code,
            0);
  const CliResult h = run_cli("quantize --in " + file("in.h5") + ":/params/fc1.weight" + tail +
                              file("b.f32") + " --out " + file("b.h5"));
  ASSERT_EQ(h.code, 0) << h.out;
  EXPECT_EQ(slurp(file("a.f32")), slurp(file("b.f32")));
  const EncodedTensor expected = Codec::make("nvfp4").encode(x.data(), kR, kK);
  expect_spec_group(file("b.h5"), "tensor", expected, {kR, kK});
  // The dataset's element count must be R*K; other dtypes and names are refused.
  const std::string in = " --codec mxfp4 --out " + file("c.h5") + " --in " + file("in.h5");
  expect_refused("quantize --shape 3,36" + in + ":/params/fc1.weight", {"111", "108", "[3, 37]"});
  expect_refused("quantize --shape 3,37" + in + ":/params/f64", {"float64", "float32"});
  expect_refused("quantize --shape 3,37" + in + ":/params/nope",
                 {"no such dataset", "/params/nope"});
}

TEST_F(QuantizeCli, BadArgumentsAreClearErrorsAndWriteNothing) {
  const std::string x = write_raw("x.f32", random_tensor(kR * kK, 1));
  const std::string ok = " --in " + x + " --out " + file("o.h5") + " --dequant " + file("o.f32");
  std::vector<const char*> known;
  for (const std::string& n : Codec::names()) known.push_back(n.c_str());
  expect_refused("quantize --codec mxfp5 --shape 3,37" + ok, {"mxfp5"});
  const CliResult u = run_cli("quantize --codec mxfp5 --shape 3,37" + ok);
  for (const char* n : known) EXPECT_NE(u.out.find(n), std::string::npos) << n << ": " << u.out;
  expect_refused("quantize --codec mxfp4 --shape 3,36" + ok, {"x.f32", "444 bytes", "432"});
  expect_refused("quantize --codec mxfp4 --shape 3,0" + ok, {"zero dimension"});
  for (const char* bad :
       {"3x37", "3,", ",37", "-3,37", "3,,37", "''", "3.5,37", "99999999999999999,37"})
    expect_refused(std::string("quantize --codec mxfp4 --shape ") + bad + ok, {"--shape"});
  expect_refused(
      "quantize --codec mxfp4 --shape 3,37 --in " + file("missing.f32") + " --out " + file("o.h5"),
      {"missing.f32", "does not exist"});
  expect_refused("quantize --codec mxfp4 --shape 3,37 --in " + file("missing.h5") + ":/x --out " +
                     file("o.h5"),
                 {"missing.h5:/x", "does not exist"});
  expect_refused("quantize --codec int8_sym --scale-rule rceil --shape 3,37" + ok,
                 {"--scale-rule", "MX", "int8_sym"});
  expect_refused("quantize --codec mxfp4 --scale-rule ceil --shape 3,37" + ok, {"ceil", "rceil"});
  expect_refused("quantize --codec mxfp4 --group-size 16 --shape 3,37" + ok,
                 {"--group-size", "INT", "int4_asym"});
  expect_refused("quantize --codec int8_sym --group-size 0 --shape 3,37" + ok, {"--group-size"});
  expect_refused("quantize --codec mxfp4 --global-amax 3 --shape 3,37" + ok,
                 {"--global-amax", "nvfp4"});
  for (const char* bad : {"-1", "nan", "inf", "1e40", "3x", "''"})
    expect_refused(
        std::string("quantize --codec nvfp4 --global-amax ") + bad + " --shape 3,37" + ok,
        {"--global-amax", "finite"});
  expect_refused("quantize --codec mxfp4 --in " + x + " --out " + file("o.h5"),
                 {"--shape", "required"});
  expect_refused(
      "quantize --codec mxfp4 --shape 3,37 --in " + x + " --out " + file("o.h5") + " --name a//b",
      {"a//b", "cannot be an HDF5 group path"});
  expect_refused("quantize --codec mxfp4 --shape 3,37 --in " + x + " --out " + file("o.h5") +
                     " --dequant " + file("o.h5"),
                 {"same file"});
  expect_refused(
      "quantize --codec mxfp4 --shape 3,37 --in " + x + " --out " + file("o.h5") + " --bogus 1",
      {"--bogus"});
  // An existing output survives a failed run untouched.
  std::ofstream(file("keep.h5")) << "old";
  expect_refused("quantize --codec mxfp4 --shape 1,37" + std::string(" --in ") + x + " --out " +
                     file("keep.h5"),
                 {"444 bytes"});
  EXPECT_EQ(slurp(file("keep.h5")), "old");
}

// A good group of `codec` in `name`, read back as its pieces.
EncodedTensor sample(const std::string& codec, quant::CodecOptions opt = {}) {
  const std::vector<float> x = random_tensor(kR * kK, 3);
  return Codec::make(codec, opt).encode(x.data(), kR, kK);
}

void write_group(const std::string& path, const std::string& codec,
                 const std::function<void(H5Writer&)>& tamper = nullptr) {
  H5Writer w = H5Writer::create(path);
  write_quantized(w, "tensor", sample(codec), {kR, kK});
  if (tamper) tamper(w);
  w.commit();
}

TEST_F(QuantizeCli, DequantizeRefusesForeignOrDamagedGroups) {
  const std::string out = " --out " + file("x.f32");
  write_group(file("c5.h5"), "mxfp4",
              [](H5Writer& w) { w.set_attr_string("tensor", "codec", "mxfp5"); });
  expect_refused("dequantize " + file("c5.h5") + out,
                 {"c5.h5", "'tensor'", "mxfp5", "mxfp8_e4m3, "});
  write_group(file("v2.h5"), "nvfp4",
              [](H5Writer& w) { w.set_attr_i64("tensor", "spec_version", 2); });
  expect_refused("dequantize " + file("v2.h5") + out,
                 {"v2.h5", "spec_version 2", "reads spec_version 1"});
  // Truncated codes: one column fewer than [3, 16] (mxfp4, K = 37 -> 2 blocks of 16 bytes).
  write_group(file("trunc.h5"), "mxfp4");
  edit_h5(file("trunc.h5"), [](hid_t f) {
    ASSERT_GE(H5Ldelete(f, "/tensor/codes", H5P_DEFAULT), 0);
    const hsize_t dims[2] = {kR, 31};
    std::vector<uint8_t> codes(kR * 31, 0x11);
    hid_t space = H5Screate_simple(2, dims, nullptr);
    hid_t ds =
        H5Dcreate2(f, "/tensor/codes", H5T_STD_U8LE, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    H5Dwrite(ds, H5T_NATIVE_UINT8, H5S_ALL, H5S_ALL, H5P_DEFAULT, codes.data());
    H5Dclose(ds);
    H5Sclose(space);
  });
  expect_refused("dequantize " + file("trunc.h5") + out,
                 {"'tensor'", "codes", "[3, 31]", "[3, 32]"});
  expect_refused("dequantize " + file("trunc.h5") + " --name other" + out, {"'other'", "tensor"});
  expect_refused("dequantize " + file("nothere.h5") + out, {"nothere.h5", "does not exist"});
  std::ofstream(file("junk.h5")) << "not hdf5";
  expect_refused("dequantize " + file("junk.h5") + out, {"junk.h5", "not an HDF5 file"});
  expect_refused("dequantize " + file("trunc.h5"), {"--out", "required"});
}

TEST(QuantizeGroup, ReaderValidatesEveryObject) {
  const fs::path dir = fs::temp_directory_path() / ("mxqat_qgroup_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  const std::string path = (dir / "g.h5").string();
  auto read = [&] { return read_quantized(H5Reader::open(path), "tensor"); };
  auto damaged = [&](const std::string& codec, const std::function<void(hid_t)>& fn) {
    write_group(path, codec);
    edit_h5(path, fn);
  };
  damaged("mxfp4", [](hid_t f) { H5Adelete_by_name(f, "tensor", "packing", H5P_DEFAULT); });
  EXPECT_ERROR_HAS(read(), "'tensor'", "g.h5", "'packing' is missing");
  write_group(path, "mxfp4", [](H5Writer& w) { w.set_attr_string("tensor", "packing", "msb"); });
  EXPECT_ERROR_HAS(read(), "packing \"msb\"", "lsb_first");
  write_group(path, "mxfp4", [](H5Writer& w) { w.set_attr_string("tensor", "scale_rule", "up"); });
  EXPECT_ERROR_HAS(read(), "scale_rule \"up\"", "floor, rceil");
  write_group(path, "mxfp6_e3m2", [](H5Writer& w) { w.set_attr_i64("tensor", "block_size", 16); });
  EXPECT_ERROR_HAS(read(), "block_size 16", "32");
  write_group(path, "int8_sym", [](H5Writer& w) { w.set_attr_i64("tensor", "block_size", 16); });
  EXPECT_ERROR_HAS(read(), "dataset 'codes' has shape [3, 37]", "[3, 48]");
  write_group(path, "mxfp4", [](H5Writer& w) { w.set_attr_i64("tensor", "element_bits", 8); });
  EXPECT_ERROR_HAS(read(), "element_bits 8", "4 bits");
  write_group(path, "mxfp4", [](H5Writer& w) { w.set_attr_i64("tensor", "block_axis", 0); });
  EXPECT_ERROR_HAS(read(), "block_axis 0", "last axis");
  write_group(path, "mxfp4", [](H5Writer& w) { w.set_attr_i64s("tensor", "shape", {4, 37}); });
  EXPECT_ERROR_HAS(read(), "dataset 'codes' has shape [3, 32]", "[4, 32]");
  write_group(path, "nvfp4", [](H5Writer& w) { w.set_attr_f64("tensor", "global_amax", 2.0); });
  EXPECT_ERROR_HAS(read(), "global_amax");  // float64: bits may have been lost
  write_group(path, "nvfp4",
              [](H5Writer& w) { w.set_attr_f32("tensor", "global_decode_scale", 1.0f); });
  EXPECT_ERROR_HAS(read(), "global_decode_scale", "do not follow from global_amax");
  write_group(path, "int8_sym", [](H5Writer& w) {
    w.write("tensor/zero_points", std::vector<uint8_t>(kR, 0), {kR, 1});
  });
  EXPECT_ERROR_HAS(read(), "zero_points", "int8_sym");
  damaged("int4_asym", [](hid_t f) {  // zero point 16 does not fit a nibble; CRC removed too
    hid_t ds = H5Dopen2(f, "/tensor/zero_points", H5P_DEFAULT);
    const uint8_t z[kR] = {16, 0, 0};
    H5Dwrite(ds, H5T_NATIVE_UINT8, H5S_ALL, H5S_ALL, H5P_DEFAULT, z);
    H5Adelete(ds, "crc32");
    H5Dclose(ds);
  });
  EXPECT_ERROR_HAS(read(), "zero point 16", "[0, 15]");
  damaged("mxfp8_e5m2", [](hid_t f) { H5Ldelete(f, "/tensor/scales", H5P_DEFAULT); });
  EXPECT_ERROR_HAS(read(), "dataset 'scales' is missing");
  write_group(path, "int4_asym", [](H5Writer& w) { w.set_attr_i64("tensor", "spec_version", 0); });
  EXPECT_ERROR_HAS(read(), "spec_version 0");
  // Each good group still reads: the tampering above, not the writer, made them fail.
  for (const std::string& codec : Codec::names()) {
    write_group(path, codec);
    expect_same(read(), sample(codec), codec);
  }
  fs::remove_all(dir);
}

TEST(QuantizeGroup, WriterChecksNamesAndSizes) {
  const fs::path dir = fs::temp_directory_path() / ("mxqat_qgroupw_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  const std::string path = (dir / "w.h5").string();
  {
    H5Writer w = H5Writer::create(path);
    const EncodedTensor e = sample("int4_asym");
    for (const char* bad : {"", "/", "a//b", "a/./b", "a/", "../a"})
      EXPECT_ERROR_HAS(write_quantized(w, bad, e, {kR, kK}), "cannot be an HDF5 group path");
    write_quantized(w, "blocks.1/attn.qkv.weight", e, {kR, kK});
    EXPECT_ERROR_HAS(write_quantized(w, "blocks.1/attn.qkv.weight", e, {kR, kK}), "already taken");
    EXPECT_ERROR_HAS(write_quantized(w, "x", e, {kR, kK + 1}), "[3, 37]", "[3, 38]");
    EXPECT_ERROR_HAS(write_quantized(w, "x", e, {kR * kK}), "[3, 37]", "[1, 111]");
    EncodedTensor cut = e;
    cut.codes.pop_back();
    EXPECT_ERROR_HAS(write_quantized(w, "x", cut, {kR, kK}), "code bytes", "3 x 19");
    EncodedTensor zp = e;
    zp.zero_points[1] = 16;
    EXPECT_ERROR_HAS(write_quantized(w, "x", zp, {kR, kK}), "zero point 16", "[0, 15]");
    EncodedTensor nv = sample("nvfp4");
    nv.global_encode_scale *= 2.0f;
    EXPECT_ERROR_HAS(write_quantized(w, "y", nv, {kR, kK}), "do not follow from global_amax");
    // Zero rows are a valid tensor ([0, K] datasets).
    const Codec c = Codec::make("mxfp4");
    write_quantized(w, "empty", c.encode(nullptr, 0, kK), {0, kK});
    w.commit();
  }
  H5Reader r = H5Reader::open(path);
  EXPECT_EQ(r.list("/"), (std::vector<std::string>{"blocks.1", "empty"}));
  Shape s;
  expect_same(read_quantized(r, "blocks.1/attn.qkv.weight", &s), sample("int4_asym"), "nested");
  EXPECT_EQ(s, (Shape{kR, kK}));
  EXPECT_EQ(read_quantized(r, "empty", &s).codes.size(), 0u);
  EXPECT_EQ(s, (Shape{0, kK}));
  fs::remove_all(dir);
}

TEST_F(QuantizeCli, H5dumpReadsTheOutput) {
  if (std::system("command -v h5dump > /dev/null 2>&1") != 0) GTEST_SKIP() << "no h5dump";
  const std::string x = write_raw("x.f32", random_tensor(kR * kK, 2));
  const CliResult q = run_cli("quantize --codec nvfp4 --shape 3,37 --in " + x + " --out " +
                              file("q.h5") + " --name blocks.0/fc1.weight");
  ASSERT_EQ(q.code, 0) << q.out;
  // -H: the structure and types; -A: also the attribute values.
  for (const char* flag : {"-H", "-A"}) {
    const std::string dump = file("dump.txt");
    const std::string cmd =
        std::string("h5dump ") + flag + " '" + file("q.h5") + "' > '" + dump + "' 2>&1";
    ASSERT_EQ(std::system(cmd.c_str()), 0) << slurp(dump);
    const std::string text = slurp(dump);
    for (const char* part : {"\"fc1.weight\"", "\"codes\"", "\"scales\"", "global_decode_scale",
                             "H5T_IEEE_F32LE", "H5T_STD_U8LE", "( 3, 24 )", "( 3, 3 )"})
      EXPECT_NE(text.find(part), std::string::npos) << part << " in:\n" << text;
    if (std::string(flag) == "-A") {
      for (const char* part : {"\"nvfp4\"", "\"lsb_first\""})
        EXPECT_NE(text.find(part), std::string::npos) << part << " in:\n" << text;
    }
  }
}

}  // namespace
}  // namespace mxqat::trainers
