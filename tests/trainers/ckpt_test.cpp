// Tests of trainers/io/h5file (the HDF5 layer) and trainers/ckpt (training checkpoints): bitwise
// round trips, atomic writes, and a clear mxqat::Error for every kind of bad file.
// The raw HDF5 C API is used here only to inspect or damage files behind the layer's back.
#include <hdf5.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <limits>
#include <random>
#include <string>

#include "quant/codec/formats.h"
#include "tests/test_util.h"
#include "trainers/io/ckpt.h"
#include "trainers/io/h5file.h"
#include "trainers/io/integrity.h"

// HDF5 1.10 leaks a little memory on its error paths when it reads damaged files (the corruption
// test below); that is the library's, not ours, so LeakSanitizer (MXQAT_SANITIZE) skips it.
extern "C" const char* __lsan_default_suppressions() { return "leak:libhdf5\n"; }

namespace mxqat::trainers {
namespace {

namespace fs = std::filesystem;
using autograd::Shape;
using autograd::Tensor;

// The float32 bit casts of the codec layer (spec §0).
float from_bits(uint32_t b) { return quant::u2f(b); }
uint32_t bits_of(float f) { return quant::f2u(f); }


class CkptTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    dir_ = fs::temp_directory_path() /
           ("mxqat_ckpt_" + std::to_string(::getpid()) + "_" + info->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::string file(const std::string& name) const { return (dir_ / name).string(); }
  std::vector<std::string> dir_entries() const {
    std::vector<std::string> names;
    for (const auto& e : fs::directory_iterator(dir_)) names.push_back(e.path().filename());
    std::sort(names.begin(), names.end());
    return names;
  }
  static std::string slurp(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(in), {});
  }

  fs::path dir_;
};

// A checkpoint that exercises every field, special floats and awkward names.
Checkpoint sample_checkpoint() {
  Checkpoint c;
  c.recipe_text = "seed: 7\nmodel:\n  type: mlp   # déjà vu, ünïcode\n  hidden: [256, 128]\n";
  c.step = 123456789012;
  c.epoch = 3;
  std::vector<float> special = {
      from_bits(0x7fc00001),  // quiet NaN with a payload
      from_bits(0x7f800001),  // signalling NaN
      from_bits(0xffc12345),  // negative NaN, payload
      -0.0f, 0.0f,
      from_bits(0x00000001),  // smallest subnormal
      from_bits(0x807fffff),  // largest negative subnormal
      std::numeric_limits<float>::infinity(), -std::numeric_limits<float>::infinity(),
      std::numeric_limits<float>::max(), std::numeric_limits<float>::lowest(), 1.0f / 3.0f};
  c.params.emplace_back("blocks.2.fc1.weight", Tensor({3, 4}, special));
  c.params.emplace_back("blocks.2.fc1.bias", Tensor({4}, {0.5f, -0.25f, 1e-40f, -1e-45f}));
  c.params.emplace_back("enc/layer.0/w", Tensor({2, 1, 2, 3}, 1.5f));  // slashes make groups
  c.params.emplace_back("a_scalar", Tensor::scalar(-0.0f));
  c.params.emplace_back("empty", Tensor({0}));
  std::mt19937 rng(5);
  std::uniform_int_distribution<uint32_t> any_bits;
  Tensor noise({17, 33});
  for (int64_t i = 0; i < noise.size(); ++i) noise[i] = from_bits(any_bits(rng));
  c.params.emplace_back("noise", noise);
  c.optimizer_state.emplace_back("blocks.2.fc1.weight/exp_avg", Tensor({3, 4}, 0.125f));
  c.optimizer_state.emplace_back("blocks.2.fc1.weight/exp_avg_sq", Tensor({3, 4}, special));
  c.optimizer_state.emplace_back("noise/momentum", noise);
  c.meta = {{"optimizer", "adamw"}, {"model", "mlp"}, {"policy", "fc1 | mxfp4 | -\nfc2 | - | -"},
            {"empty", ""}, {"with.dot", "x"}};
  c.scalars = {{"best_val_accuracy", 0.8765}, {"neg_zero", -0.0}, {"tiny", 4.9e-324},
               {"nan", std::nan("")}};
  c.counters = {{"skipped_steps", 2}, {"data_cursor", 9876543210},
                {"min", std::numeric_limits<int64_t>::min()},
                {"max", std::numeric_limits<int64_t>::max()}};
  c.rng_state = "mt19937 5489 1 2 3\nmt19937 42 4 5 6\n";
  return c;
}

void expect_same(const Checkpoint& a, const Checkpoint& b) {
  EXPECT_EQ(a.recipe_text, b.recipe_text);
  EXPECT_EQ(a.step, b.step);
  EXPECT_EQ(a.epoch, b.epoch);
  EXPECT_EQ(a.rng_state, b.rng_state);
  EXPECT_EQ(a.meta, b.meta);
  EXPECT_EQ(a.counters, b.counters);
  ASSERT_EQ(a.scalars.size(), b.scalars.size());
  for (const auto& [key, value] : a.scalars) {
    ASSERT_TRUE(b.scalars.count(key)) << key;
    EXPECT_EQ(std::memcmp(&value, &b.scalars.at(key), 8), 0) << key;  // bits, NaN included
  }
  auto same_tensors = [](const auto& x, const auto& y) {
    ASSERT_EQ(x.size(), y.size());
    for (size_t i = 0; i < x.size(); ++i) {
      EXPECT_EQ(x[i].first, y[i].first);  // order kept
      EXPECT_TRUE(x[i].second.same_bits(y[i].second)) << x[i].first;
      EXPECT_EQ(x[i].second.shape(), y[i].second.shape()) << x[i].first;
    }
  };
  same_tensors(a.params, b.params);
  same_tensors(a.optimizer_state, b.optimizer_state);
}

// ---------------------------------------------------------------------------- checkpoints

TEST_F(CkptTest, RoundTripIsBitwise) {
  Checkpoint c = sample_checkpoint();
  save_checkpoint(file("c.h5"), c);
  EXPECT_EQ(dir_entries(), std::vector<std::string>{"c.h5"});  // the temporary file is gone
  EXPECT_TRUE(is_checkpoint(file("c.h5")));
  Checkpoint back = load_checkpoint(file("c.h5"));
  expect_same(c, back);
  EXPECT_EQ(bits_of(back.params[0].second[0]), 0x7fc00001u);
  EXPECT_EQ(bits_of(back.params[0].second[1]), 0x7f800001u);
  EXPECT_EQ(bits_of(back.params[3].second.item()), 0x80000000u);
  EXPECT_EQ(back.params[3].second.shape(), Shape{});
  EXPECT_EQ(back.params[4].second.shape(), Shape{0});
}

TEST_F(CkptTest, EmptyCheckpointRoundTrips) {
  Checkpoint c;  // no params, no optimizer state, empty strings
  save_checkpoint(file("e.h5"), c);
  Checkpoint back = load_checkpoint(file("e.h5"));
  expect_same(c, back);
  Checkpoint only_params = sample_checkpoint();
  only_params.optimizer_state.clear();
  save_checkpoint(file("p.h5"), only_params);
  expect_same(only_params, load_checkpoint(file("p.h5")));
}

TEST_F(CkptTest, OverwriteReplacesAtomically) {
  Checkpoint c = sample_checkpoint();
  save_checkpoint(file("c.h5"), c);
  c.step = 7;
  c.params.pop_back();
  save_checkpoint(file("c.h5"), c);
  expect_same(c, load_checkpoint(file("c.h5")));
  EXPECT_EQ(dir_entries(), std::vector<std::string>{"c.h5"});
}

TEST_F(CkptTest, FailedWriteLeavesExistingFileAndNoTemp) {
  save_checkpoint(file("c.h5"), sample_checkpoint());
  std::string before = slurp(file("c.h5"));
  Checkpoint bad = sample_checkpoint();
  bad.step = 99;
  bad.meta[""] = "an empty attribute name fails after all tensors are written";
  EXPECT_ERROR_HAS(save_checkpoint(file("c.h5"), bad), "empty name", "c.h5");
  EXPECT_EQ(slurp(file("c.h5")), before);
  EXPECT_EQ(dir_entries(), std::vector<std::string>{"c.h5"});
  EXPECT_EQ(load_checkpoint(file("c.h5")).step, sample_checkpoint().step);
}

TEST_F(CkptTest, BadNamesAreRefusedBeforeWriting) {
  auto with_param = [](std::vector<std::string> names) {
    Checkpoint c;
    for (const auto& n : names) c.params.emplace_back(n, Tensor({1}));
    return c;
  };
  EXPECT_ERROR_HAS(save_checkpoint(file("c.h5"), with_param({"a//b"})), "'a//b'", "rename");
  EXPECT_ERROR_HAS(save_checkpoint(file("c.h5"), with_param({""})), "parameter name ''");
  EXPECT_ERROR_HAS(save_checkpoint(file("c.h5"), with_param({"x/"})), "'x/'");
  EXPECT_ERROR_HAS(save_checkpoint(file("c.h5"), with_param({"a/../b"})), "'a/../b'");
  EXPECT_ERROR_HAS(save_checkpoint(file("c.h5"), with_param({"w", "w"})), "'w' appears twice");
  EXPECT_ERROR_HAS(save_checkpoint(file("c.h5"), with_param({"a/b", "a.c", "a"})), "'a' and 'a/b'",
                   "clash");
  EXPECT_TRUE(dir_entries().empty());
}

TEST_F(CkptTest, TruncatedFileIsAClearError) {
  save_checkpoint(file("c.h5"), sample_checkpoint());
  fs::resize_file(file("c.h5"), fs::file_size(file("c.h5")) / 2);
  EXPECT_FALSE(is_checkpoint(file("c.h5")));
  EXPECT_ERROR_HAS(load_checkpoint(file("c.h5")), "c.h5", "truncated", "regenerate");
}

TEST_F(CkptTest, ForeignHdf5FileIsNotACheckpoint) {
  {
    H5Writer w = H5Writer::create(file("foreign.h5"));
    std::vector<double> v = {1, 2, 3};
    w.write("/data", v, {3});
    w.commit();
  }
  EXPECT_FALSE(is_checkpoint(file("foreign.h5")));
  EXPECT_ERROR_HAS(load_checkpoint(file("foreign.h5")), "foreign.h5", "not an mxqat checkpoint");
}

TEST_F(CkptTest, ExportAndNewerVersionAreNamed) {
  {
    H5Writer w = H5Writer::create(file("export.h5"));
    w.set_attr_string("/", "mxqat_format", "export");
    w.commit();
  }
  EXPECT_ERROR_HAS(load_checkpoint(file("export.h5")), "export.h5", "is an mxqat export",
                   "mxqat eval");
  {
    H5Writer w = H5Writer::create(file("v2.h5"));
    w.set_attr_string("/", "mxqat_format", "checkpoint");
    w.set_attr_i64("/", "mxqat_checkpoint_version", 2);
    w.commit();
  }
  EXPECT_FALSE(is_checkpoint(file("v2.h5")));
  EXPECT_ERROR_HAS(load_checkpoint(file("v2.h5")), "v2.h5", "version 2", "reads version 1",
                   "newer mxqat");
}

// Damage a good checkpoint with the raw C API: delete or retype one object.
void damage(const std::string& path, const std::function<void(hid_t)>& fn) {
  hid_t f = H5Fopen(path.c_str(), H5F_ACC_RDWR, H5P_DEFAULT);
  ASSERT_GE(f, 0);
  fn(f);
  H5Fclose(f);
  seal_file(path);  // a hostile edit that passes the integrity block: the checks behind it
}

TEST_F(CkptTest, MissingOrMistypedObjectsAreNamed) {
  for (const char* victim : {"/rng_state", "/params/enc/layer.0/w", "/optimizer"}) {
    save_checkpoint(file("c.h5"), sample_checkpoint());
    damage(file("c.h5"), [&](hid_t f) { ASSERT_GE(H5Ldelete(f, victim, H5P_DEFAULT), 0); });
    EXPECT_FALSE(is_checkpoint(file("c.h5"))) << victim;
    EXPECT_ERROR_HAS(load_checkpoint(file("c.h5")), "c.h5", "lacks", victim, "re-run training");
  }
  save_checkpoint(file("c.h5"), sample_checkpoint());
  damage(file("c.h5"), [](hid_t f) {
    ASSERT_GE(H5Ldelete(f, "/params/noise", H5P_DEFAULT), 0);
    hid_t space = H5Screate(H5S_SCALAR);
    hid_t ds = H5Dcreate2(f, "/params/noise", H5T_STD_I32LE, space, H5P_DEFAULT, H5P_DEFAULT,
                          H5P_DEFAULT);
    int v = 1;
    H5Dwrite(ds, H5T_NATIVE_INT, H5S_ALL, H5S_ALL, H5P_DEFAULT, &v);
    H5Dclose(ds);
    H5Sclose(space);
  });
  EXPECT_ERROR_HAS(load_checkpoint(file("c.h5")), "c.h5", "is damaged", "/params/noise",
                   "holds int32", "float32 was expected");
  save_checkpoint(file("c.h5"), sample_checkpoint());
  damage(file("c.h5"), [](hid_t f) {  // an unlisted extra parameter
    hid_t space = H5Screate(H5S_SCALAR);
    hid_t ds = H5Dcreate2(f, "/params/stray", H5T_IEEE_F32LE, space, H5P_DEFAULT, H5P_DEFAULT,
                          H5P_DEFAULT);
    H5Dclose(ds);
    H5Sclose(space);
  });
  EXPECT_ERROR_HAS(load_checkpoint(file("c.h5")), "c.h5", "'/params' holds 7 datasets",
                   "index lists 6");
}

// Damaged bytes anywhere: loading either succeeds (bytes HDF5 never reads) or throws
// mxqat::Error; never a crash, another exception, or silently different weights.
TEST_F(CkptTest, CorruptedBytesNeverCrashNorChangeWeights) {
  Checkpoint c = sample_checkpoint();
  save_checkpoint(file("good.h5"), c);
  std::string good = slurp(file("good.h5"));
  std::mt19937 rng(11);
  int errors = 0;
  for (int trial = 0; trial < 300; ++trial) {
    std::string bytes = good;
    for (int k = 0; k < 3; ++k) bytes[rng() % bytes.size()] ^= static_cast<char>(1 + rng() % 255);
    { std::ofstream(file("bad.h5"), std::ios::binary) << bytes; }
    try {
      Checkpoint back = load_checkpoint(file("bad.h5"));
      ASSERT_EQ(back.params.size(), c.params.size());
      for (size_t i = 0; i < c.params.size(); ++i)
        EXPECT_TRUE(back.params[i].second.same_bits(c.params[i].second))
            << "trial " << trial << " " << c.params[i].first;
      EXPECT_EQ(back.recipe_text, c.recipe_text) << "trial " << trial;
    } catch (const Error&) {
      ++errors;
    }
  }
  EXPECT_GT(errors, 30);  // the damage is detected often, not just survived
}

// What the fuzz targets check after every input: an open file and its objects are counted, and
// nothing stays open once the readers are gone, also after loads that threw.
TEST_F(CkptTest, NoHdf5ObjectStaysOpen) {
  save_checkpoint(file("good.h5"), sample_checkpoint());
  ASSERT_EQ(hdf5_open_objects(), 0);
  {
    H5Reader r = H5Reader::open(file("good.h5"));
    EXPECT_GT(hdf5_open_objects(), 0);
  }
  EXPECT_EQ(hdf5_open_objects(), 0);
  {  // a sound HDF5 file that is not a checkpoint: opened, then refused
    H5Writer w = H5Writer::create(file("foreign.h5"));
    w.write("/data", std::vector<double>{1, 2, 3}, {3});
    w.commit();
  }
  EXPECT_THROW(load_checkpoint(file("foreign.h5")), Error);
  EXPECT_EQ(hdf5_open_objects(), 0);
}

TEST_F(CkptTest, NonHdf5AndMissingFiles) {
  {
    std::ofstream out(file("random.h5"), std::ios::binary);
    std::mt19937 rng(1);
    for (int i = 0; i < 5000; ++i) out.put(static_cast<char>(rng()));
  }
  EXPECT_FALSE(is_checkpoint(file("random.h5")));
  EXPECT_ERROR_HAS(load_checkpoint(file("random.h5")), "random.h5", "not a file written by mxqat");
  { std::ofstream out(file("empty.h5")); }
  EXPECT_ERROR_HAS(load_checkpoint(file("empty.h5")), "empty.h5", "not a file written by mxqat");
  EXPECT_FALSE(is_checkpoint(file("nope.h5")));
  EXPECT_ERROR_HAS(load_checkpoint(file("nope.h5")), "nope.h5", "does not exist");
  EXPECT_ERROR_HAS(load_checkpoint(dir_.string()), "is a directory");
  EXPECT_ERROR_HAS(save_checkpoint(file("no/such/dir/c.h5"), Checkpoint{}), "does not exist",
                   "no/such/dir");
}

TEST_F(CkptTest, CheckShapes) {
  Checkpoint c;
  c.params.emplace_back("fc1.weight", Tensor({512, 784}));
  c.params.emplace_back("fc1.bias", Tensor({512}));
  using Expected = std::vector<std::pair<std::string, Shape>>;
  EXPECT_NO_THROW(check_shapes(c, Expected{{"fc1.bias", {512}}, {"fc1.weight", {512, 784}}}, "x"));
  EXPECT_ERROR_HAS(
      check_shapes(c, Expected{{"fc1.weight", {256, 784}}, {"fc1.bias", {512}}}, "run/c.h5"),
      "checkpoint 'run/c.h5': parameter 'fc1.weight' has shape [512, 784] but the model expects "
      "[256, 784]; the recipe's model section differs");
  EXPECT_ERROR_HAS(check_shapes(c, Expected{{"fc1.weight", {512, 784}}, {"fc1.bias", {512}},
                                            {"fc2.weight", {10, 512}}},
                                "c.h5"),
                   "'fc2.weight' (shape [10, 512]) is missing");
  EXPECT_ERROR_HAS(check_shapes(c, Expected{{"fc1.weight", {512, 784}}}, "c.h5"),
                   "parameter 'fc1.bias' (shape [512]) is not in the model");
}

TEST_F(CkptTest, H5dumpReadsACheckpoint) {
  if (std::system("command -v h5dump > /dev/null 2>&1") != 0) GTEST_SKIP() << "no h5dump";
  save_checkpoint(file("c.h5"), sample_checkpoint());
  std::string out = file("dump.txt");
  ASSERT_EQ(std::system(("h5dump '" + file("c.h5") + "' > '" + out + "' 2>&1").c_str()), 0)
      << slurp(out);
  std::string dump = slurp(out);
  for (const char* part : {"mxqat_format", "\"checkpoint\"", "blocks.2.fc1.weight", "exp_avg_sq",
                           "H5T_IEEE_F32LE", "best_val_accuracy", "mt19937 5489"})
    EXPECT_NE(dump.find(part), std::string::npos) << part;
}

// ---------------------------------------------------------------------------- the HDF5 layer

TEST_F(CkptTest, H5TypesAttributesAndListing) {
  std::vector<uint8_t> codes = {0, 1, 2, 255, 128, 7};
  std::vector<int32_t> i32 = {std::numeric_limits<int32_t>::min(), -1, 0, 7};
  std::vector<int64_t> i64 = {std::numeric_limits<int64_t>::max(), -5};
  std::vector<double> f64 = {-0.0, 4.9e-324, 1e300};
  {
    H5Writer w = H5Writer::create(file("t.h5"));
    w.write("/q/blocks.0.fc.weight/codes", codes, {2, 3});
    w.write("/q/blocks.0.fc.weight/idx", i32, {4});
    w.write("/x/i64", i64, {2});
    w.write("/x/f64", f64, {3});
    w.write_tensor("/x/t", Tensor({2, 2}, {1, 2, 3, 4}));
    w.write_strings("/policy", {"fc1", "mxfp4", "-", "fc2", "-", "-"}, {2, 3});
    w.write_string("/text", "");
    w.set_attr_string("/q/blocks.0.fc.weight", "codec", "nvfp4");
    w.set_attr_i64("/q/blocks.0.fc.weight", "spec_version", 1);
    w.set_attr_i64s("/q/blocks.0.fc.weight", "shape", {2, 6});
    w.set_attr_f32("/q/blocks.0.fc.weight", "global_amax", from_bits(0x3f8ccccd));
    w.set_attr_f64("/q/blocks.0.fc.weight/codes", "ratio", 0.1);
    w.set_attr_i64("/", "root_attr", 5);
    w.set_attr_i64("/", "root_attr", 6);  // replaced
    w.set_attr_string("/newgroup", "made", "on demand");
    EXPECT_TRUE(w.exists("/q/blocks.0.fc.weight/codes"));  // readable before commit
    w.commit();
  }
  H5Reader r = H5Reader::open(file("t.h5"));
  Shape s;
  EXPECT_EQ(r.read<uint8_t>("/q/blocks.0.fc.weight/codes", &s), codes);
  EXPECT_EQ(s, (Shape{2, 3}));
  EXPECT_EQ(r.read_expect<int32_t>("q/blocks.0.fc.weight/idx", {4}), i32);
  EXPECT_EQ(r.read<int64_t>("/x/i64"), i64);
  std::vector<double> f64_back = r.read<double>("/x/f64");
  EXPECT_EQ(std::memcmp(f64_back.data(), f64.data(), 24), 0);
  EXPECT_TRUE(r.read_tensor("/x/t").same_bits(Tensor({2, 2}, {1, 2, 3, 4})));
  EXPECT_EQ(r.read_strings("/policy", &s),
            (std::vector<std::string>{"fc1", "mxfp4", "-", "fc2", "-", "-"}));
  EXPECT_EQ(s, (Shape{2, 3}));
  EXPECT_EQ(r.read_string("/text"), "");
  EXPECT_EQ(r.attr_string("/q/blocks.0.fc.weight", "codec"), "nvfp4");
  EXPECT_EQ(r.attr_i64("/q/blocks.0.fc.weight", "spec_version"), 1);
  EXPECT_EQ(r.attr_i64s("/q/blocks.0.fc.weight", "shape"), (std::vector<int64_t>{2, 6}));
  EXPECT_EQ(bits_of(r.attr_f32("/q/blocks.0.fc.weight", "global_amax")), 0x3f8ccccdu);
  EXPECT_EQ(r.attr_f64("/q/blocks.0.fc.weight", "global_amax"),
            static_cast<double>(from_bits(0x3f8ccccd)));
  EXPECT_EQ(r.attr_f64("/q/blocks.0.fc.weight/codes", "ratio"), 0.1);
  EXPECT_EQ(r.attr_i64("/", "root_attr"), 6);
  EXPECT_EQ(r.attr_string("/newgroup", "made"), "on demand");
  EXPECT_EQ(r.list("/"), (std::vector<std::string>{"newgroup", "policy", "q", "text", "x"}));
  EXPECT_EQ(r.list("/q/blocks.0.fc.weight"), (std::vector<std::string>{"codes", "idx"}));
  EXPECT_EQ(r.datasets_under("/q"),
            (std::vector<std::string>{"blocks.0.fc.weight/codes", "blocks.0.fc.weight/idx"}));
  EXPECT_EQ(r.list_attrs("/q/blocks.0.fc.weight"),
            (std::vector<std::string>{"codec", "global_amax", "shape", "spec_version"}));
  EXPECT_TRUE(r.is_group("/q/blocks.0.fc.weight"));
  EXPECT_TRUE(r.is_dataset("/x/t"));
  EXPECT_FALSE(r.exists("/q/blocks.0.fc"));
  EXPECT_FALSE(r.exists("/no/such/deep/path"));
  EXPECT_FALSE(r.exists("/x/t/below_a_dataset"));
  EXPECT_FALSE(r.has_attr("/x", "nope"));
  EXPECT_EQ(r.info("/x/f64").dtype, DType::kFloat64);
}

TEST_F(CkptTest, H5Float32AttributeIsStoredAs32Bit) {
  {
    H5Writer w = H5Writer::create(file("a.h5"));
    w.set_attr_f32("/", "global_amax", 448.0f);
    w.set_attr_f64("/", "as_double", 448.0);
    w.commit();
  }
  hid_t f = H5Fopen(file("a.h5").c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
  ASSERT_GE(f, 0);
  for (auto [name, size] : {std::pair<const char*, size_t>{"global_amax", 4}, {"as_double", 8}}) {
    hid_t a = H5Aopen(f, name, H5P_DEFAULT);
    hid_t t = H5Aget_type(a);
    EXPECT_EQ(H5Tget_class(t), H5T_FLOAT) << name;
    EXPECT_EQ(H5Tget_size(t), size) << name;
    H5Tclose(t);
    H5Aclose(a);
  }
  H5Fclose(f);
  H5Reader r = H5Reader::open(file("a.h5"));
  EXPECT_ERROR_HAS(r.attr_f32("/", "as_double"), "a.h5", "'as_double'", "not a single float32");
}

TEST_F(CkptTest, H5ReadChecksTypeShapeAndPresence) {
  {
    H5Writer w = H5Writer::create(file("t.h5"));
    w.write("/codes", std::vector<uint8_t>(6, 1), {2, 3});
    w.write_tensor("/w", Tensor({2, 3}));
    w.write("/five_d", std::vector<float>(32, 1.f), {2, 2, 2, 2, 2});
    w.set_attr_string("/", "name", "x");
    w.commit();
  }
  H5Reader r = H5Reader::open(file("t.h5"));
  EXPECT_ERROR_HAS(r.read<float>("/codes"), "t.h5", "'/codes' holds uint8 [2, 3]",
                   "float32 was expected");
  EXPECT_ERROR_HAS(r.read_tensor("/w", {3, 2}), "t.h5", "'/w' has shape [2, 3]",
                   "[3, 2] was expected");
  EXPECT_ERROR_HAS(r.read_tensor("/missing"), "t.h5", "'/missing' is missing");
  EXPECT_ERROR_HAS(r.read_tensor("/five_d"), "at most 4 dimensions");
  EXPECT_ERROR_HAS(r.attr_i64("/", "name"), "attribute 'name' of '/'", "not a single integer");
  EXPECT_ERROR_HAS(r.attr_i64("/", "nope"), "attribute 'nope' of '/' is missing");
  EXPECT_ERROR_HAS(r.attr_i64("/nowhere", "nope"), "'/nowhere' is missing");
  EXPECT_ERROR_HAS(r.read_string("/w"), "'/w' holds float32");
}

TEST_F(CkptTest, H5WriterRefusesBadWrites) {
  H5Writer w = H5Writer::create(file("t.h5"));
  w.write_tensor("/w", Tensor({2}));
  EXPECT_ERROR_HAS(w.write_tensor("/w", Tensor({2})), "'/w': it already exists");
  EXPECT_ERROR_HAS(w.write_tensor("/w/child", Tensor({2})), "'/w' is a dataset, not a group");
  EXPECT_ERROR_HAS(w.write_tensor("/a//b", Tensor({2})), "'/a//b'", "empty");
  EXPECT_ERROR_HAS(w.write("/v", std::vector<float>(5), {2, 3}), "needs 6 values, got 5");
  EXPECT_ERROR_HAS(w.write_string("/s", std::string("a\0b", 3)), "NUL byte");
  EXPECT_ERROR_HAS(w.set_attr_string("/", "s", std::string("a\0b", 3)), "NUL byte");
  w.commit();
  EXPECT_ERROR_HAS(w.write_tensor("/late", Tensor({1})), "t.h5", "after commit()");
}

TEST_F(CkptTest, H5WriterWithoutCommitLeavesNothing) {
  save_checkpoint(file("keep.h5"), sample_checkpoint());
  std::string before = slurp(file("keep.h5"));
  try {
    H5Writer w = H5Writer::create(file("keep.h5"));
    w.write_tensor("/half", Tensor({1000}, 3.f));
    EXPECT_EQ(dir_entries(), std::vector<std::string>{"keep.h5"});  // built in memory
    throw std::runtime_error("crash mid-write");
  } catch (const std::runtime_error&) {
  }
  EXPECT_EQ(slurp(file("keep.h5")), before);
  { H5Writer w = H5Writer::create(file("never.h5")); }
  EXPECT_EQ(dir_entries(), std::vector<std::string>{"keep.h5"});
}

TEST_F(CkptTest, H5CompressionIsLossless) {
  std::vector<uint8_t> codes(3 << 20);
  for (size_t i = 0; i < codes.size(); ++i) codes[i] = static_cast<uint8_t>((i / 64) % 5);
  Tensor w({512, 300});
  std::mt19937 rng(3);
  std::normal_distribution<float> normal;
  for (int64_t i = 0; i < w.size(); ++i) w[i] = normal(rng);
  {
    H5Writer out = H5Writer::create(file("z.h5"));
    WriteOptions z;
    z.compress = true;
    out.write("/codes", codes, {3072, 1024}, z);
    out.write_tensor("/w", w, z);
    out.write_tensor("/scalar", Tensor::scalar(2.f), z);  // too small to chunk: stored plainly
    out.commit();
  }
  EXPECT_LT(fs::file_size(file("z.h5")), codes.size() / 10 + w.size() * 4);
  {
    H5Reader r = H5Reader::open(file("z.h5"));
    EXPECT_EQ(r.read_expect<uint8_t>("/codes", {3072, 1024}), codes);
    EXPECT_TRUE(r.read_tensor("/w").same_bits(w));
    EXPECT_EQ(r.read_tensor("/scalar").item(), 2.f);
  }
  hid_t f = H5Fopen(file("z.h5").c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
  ASSERT_GE(f, 0);
  hid_t ds = H5Dopen2(f, "/codes", H5P_DEFAULT);
  hid_t dcpl = H5Dget_create_plist(ds);
  EXPECT_EQ(H5Pget_nfilters(dcpl), 2);  // shuffle + deflate
  H5Pclose(dcpl);
  H5Dclose(ds);
  H5Fclose(f);
}

}  // namespace
}  // namespace mxqat::trainers
