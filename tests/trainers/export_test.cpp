// Exports on a tiny slice of real Fashion-MNIST: bitwise train/infer alignment for every codec,
// the spec §9 layout, the manifest's hashes catching a flipped byte, a missing tensor, a model
// config that does not match the weights, unknown codecs and versions; SHA-256 and JSON readers.
#include <gtest/gtest.h>
#include <hdf5.h>
#include <zlib.h>

#include <cmath>
#include <filesystem>
#include <fstream>

#include "quant/codec/codec.h"
#include "quant/codec/transform/hadamard.h"
#include "tests/test_util.h"
#include "trainers/io/h5file.h"
#include "trainers/runtime/infer.h"
#include "trainers/stages/export_stage.h"
#include "trainers/stages/train_stage.h"
#include "trainers/util/json_read.h"
#include "trainers/util/sha256.h"
#include "trainers/io/integrity.h"

namespace mxqat::trainers {
namespace {

namespace fs = std::filesystem;
using mxqat::testing::expect_error;
using mxqat::testing::fresh_dir;

const char* kTiny = R"(name: tinyx
seed: 3
data: {dataset: fashion_mnist, batch_size: 32, val_size: 200, train_limit: 1000, test_limit: 400}
model: {type: mlp, hidden: [40, 24], activation: relu}
train: {steps: 30, optimizer: {type: adamw, lr: 3.0e-3}}
quant:
  weight: mxfp4
  input: mxfp4
  rules:
    - {match: head, weight: mxfp8_e4m3, input: none}
)";

const std::string& baseline() {
  static const std::string path = [] {
    fs::path d = fresh_dir("export_base");
    train(parse_recipe(kTiny, "<tinyx>"), TrainOptions{d.string(), false, -1});
    return (d / "checkpoint.h5").string();
  }();
  return path;
}

// The baseline exported under `codec` for every GEMM's weight and input (an FP32 checkpoint
// exports with its recipe's policy, so the recipe is rewritten for the codec).
std::string export_with(const std::string& codec, const fs::path& dir, const std::string& rotation = "none") {
  Checkpoint c = load_checkpoint(baseline());
  c.recipe_text = parse_recipe(kTiny, "<tinyx>", {"quant.weight=" + codec, "quant.input=" + codec,
                                                  "quant.rotation=" + rotation}).text;
  const std::string ckpt = (dir / (codec + rotation + ".ckpt.h5")).string();
  save_checkpoint(ckpt, c);
  const std::string out = (dir / (codec + rotation + ".h5")).string();
  export_checkpoint(ckpt, out);
  return out;
}

TEST(Export, EveryCodecInfersBitwiseLikeTraining) {
  fs::path d = fresh_dir("export_codecs");
  for (const std::string& codec : quant::Codec::names()) {
    const std::string path = export_with(codec, d);
    VerifyOptions vo;
    vo.record = true;  // into the manifest (by default verify only reads the export)
    const Verification v = verify_export(path, vo);
    EXPECT_TRUE(v.bitwise_equal) << codec << ": " << v.json;
    EXPECT_EQ(v.max_abs_diff, 0.0) << codec;
    EXPECT_EQ(v.samples, 400) << codec;
    const ExportModel m = read_export(path);  // the result is in the manifest now
    EXPECT_NE(m.verification.find("\"bitwise_equal\": true"), std::string::npos) << codec;
    EXPECT_LT(m.bytes(), m.float32_bytes()) << codec;
  }
}

TEST(Export, SpecLayoutAndManifest) {
  fs::path d = fresh_dir("export_layout");
  const std::string path = export_with("mxfp4", d);
  H5Reader r = H5Reader::open(path);
  EXPECT_EQ(r.attr_string("tensors/fc2.weight", "codec"), "mxfp4");
  EXPECT_EQ(r.attr_i64("tensors/fc2.weight", "block_size"), 32);
  EXPECT_EQ(r.info("tensors/fc2.weight/codes").shape, (autograd::Shape{24, 32}));   // 64 padded codes / 2
  EXPECT_EQ(r.info("tensors/fc2.weight/scales").shape, (autograd::Shape{24, 2}));   // ceil(40 / 32)
  EXPECT_EQ(r.attr_string("tensors/head.weight", "codec"), "mxfp8_e4m3");
  EXPECT_TRUE(r.is_dataset("tensors/fc2.bias"));  // biases stay float32
  const Json manifest = Json::parse(r.read_string("manifest"), "manifest");
  EXPECT_EQ(manifest.at("tensors").array().size(), 6u);
  EXPECT_EQ(manifest.at("activations").array()[2].at("codec").string(), "none");
}

// Flips one byte of a dataset's stored data in the file (contiguous layout).
void flip_byte(const std::string& file, const std::string& dataset, hsize_t at) {
  hid_t f = H5Fopen(file.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
  hid_t ds = H5Dopen2(f, dataset.c_str(), H5P_DEFAULT);
  const haddr_t off = H5Dget_offset(ds);
  H5Dclose(ds);
  H5Fclose(f);
  ASSERT_NE(off, HADDR_UNDEF) << dataset;
  std::fstream io(file, std::ios::in | std::ios::out | std::ios::binary);
  io.seekg(static_cast<std::streamoff>(off + at));
  char c = 0;
  io.read(&c, 1);
  c = static_cast<char>(c ^ 0x10);
  io.seekp(static_cast<std::streamoff>(off + at));
  io.write(&c, 1);
  io.close();
  seal_file(file);  // past the integrity block: the dataset's own checks must catch it
}

TEST(Export, FlippedByteInCodesIsNamed) {
  fs::path d = fresh_dir("export_flip");
  const std::string path = export_with("mxfp6_e2m3", d);
  flip_byte(path, "/tensors/fc1.weight/codes", 100);  // caught by the dataset's CRC-32 first
  expect_error([&] { read_export(path); }, {"fc1.weight", "codes", "damaged"});
  const std::string path2 = export_with("mxfp8_e4m3", d);
  flip_byte(path2, "/tensors/fc2.weight/scales", 3);
  expect_error([&] { read_export(path2); }, {"fc2.weight", "scales", "damaged"});
}

// An edit that keeps the per-dataset CRC-32 consistent: only the manifest's SHA-256 catches it.
TEST(Export, EditedCodesFailTheManifestHash) {
  fs::path d = fresh_dir("export_edit");
  const std::string path = export_with("mxfp4", d);
  const ExportModel m = read_export(path);
  std::vector<uint8_t> codes = m.tensors[2].packed.codes;  // fc2.weight
  ASSERT_EQ(m.tensors[2].name, "fc2.weight");
  codes[7] ^= 0x01;
  hid_t f = H5Fopen(path.c_str(), H5F_ACC_RDWR, H5P_DEFAULT);
  hid_t ds = H5Dopen2(f, "/tensors/fc2.weight/codes", H5P_DEFAULT);
  ASSERT_GE(H5Dwrite(ds, H5T_NATIVE_UINT8, H5S_ALL, H5S_ALL, H5P_DEFAULT, codes.data()), 0);
  const int64_t crc = static_cast<int64_t>(crc32(crc32(0L, Z_NULL, 0), codes.data(), uInt(codes.size())));
  hid_t a = H5Aopen(ds, "crc32", H5P_DEFAULT);
  ASSERT_GE(H5Awrite(a, H5T_NATIVE_INT64, &crc), 0);
  H5Aclose(a);
  H5Dclose(ds);
  H5Fclose(f);
  seal_file(path);
  expect_error([&] { read_export(path); }, {"fc2.weight", "codes", "SHA-256", "export it again"});
}

TEST(Export, MissingTensorIsNamed) {
  fs::path d = fresh_dir("export_missing");
  const std::string path = export_with("mxfp4", d);
  hid_t f = H5Fopen(path.c_str(), H5F_ACC_RDWR, H5P_DEFAULT);
  ASSERT_GE(H5Ldelete(f, "/tensors/fc2.weight", H5P_DEFAULT), 0);
  H5Fclose(f);
  seal_file(path);
  expect_error([&] { read_export(path); }, {"fc2.weight", "missing", "export it again"});
}

TEST(Export, ModelConfigThatDoesNotMatchTheWeights) {
  fs::path d = fresh_dir("export_config");
  ExportModel m = read_export(export_with("mxfp4", d));
  m.recipe_text = parse_recipe(kTiny, "<tinyx>", {"model.hidden=[40, 30]"}).text;
  const std::string path = (d / "edited.h5").string();
  write_export(path, m);
  expect_error([&] { load_inference(read_export(path), path); },
               {"fc2.weight", "[24, 40]", "[30, 40]", "does not match the weights"});
  m.tensors.pop_back();  // head.bias gone from the file altogether
  m.recipe_text = parse_recipe(kTiny, "<tinyx>").text;
  write_export(path, m);
  expect_error([&] { load_inference(read_export(path), path); }, {"head.bias", "lacks"});
}

TEST(Export, UnknownCodecVersionOrForeignFile) {
  fs::path d = fresh_dir("export_unknown");
  const std::string path = export_with("mxfp4", d);
  hid_t f = H5Fopen(path.c_str(), H5F_ACC_RDWR, H5P_DEFAULT);
  ASSERT_GE(f, 0);
  hid_t g = H5Gopen2(f, "/tensors/fc1.weight", H5P_DEFAULT);
  ASSERT_GE(H5Adelete(g, "spec_version"), 0);
  hid_t sp = H5Screate(H5S_SCALAR);
  hid_t a = H5Acreate2(g, "spec_version", H5T_STD_I64LE, sp, H5P_DEFAULT, H5P_DEFAULT);
  const int64_t v = 2;
  ASSERT_GE(H5Awrite(a, H5T_NATIVE_INT64, &v), 0);
  H5Aclose(a);
  H5Sclose(sp);
  H5Gclose(g);
  H5Fclose(f);
  seal_file(path);
  expect_error([&] { read_export(path); }, {"fc1.weight", "spec_version"});
  expect_error([&] { read_export(baseline()); }, {"not an mxqat export"});
  EXPECT_FALSE(is_export(baseline()));
  expect_error([&] { read_export((d / "nope.h5").string()); }, {"nope.h5"});
}

// The fast path (fc1, fc2 and head packed) agrees with the reference path within 1e-4 of the
// largest logit on the test split.
void expect_fast_agrees(const ExportModel& m, const std::string& path, const std::string& codec) {
  InferenceModel ref = load_inference(m, path);
  InferenceModel fast = load_inference(m, path, InferPath::kFast);
  EXPECT_EQ(fast.fast.size(), 3u) << codec;
  Splits s = load_fashion_mnist(ref.recipe.data, 3);
  const autograd::Tensor a = predict(*ref.model, s.test), b = predict(*fast.model, s.test);
  double scale = 0, worst = 0;
  for (int64_t i = 0; i < a.size(); ++i) scale = std::max(scale, double(std::abs(a[i])));
  for (int64_t i = 0; i < a.size(); ++i) worst = std::max(worst, double(std::abs(a[i] - b[i])));
  EXPECT_LE(worst, 1e-4 * scale) << codec;
}

TEST(Export, FastPathAgreesWithReference) {
  fs::path d = fresh_dir("export_fast");
  for (const char* codec : {"mxfp4", "mxfp6_e2m3", "mxfp8_e4m3"}) {
    const std::string path = export_with(codec, d);
    const ExportModel m = read_export(path);
    expect_fast_agrees(m, path, codec);
  }
}

// Under quant.rotation: hadamard the export stores rotated weights (K = 784 and 40 end in tails
// shorter than 32, left as they are; the head's K = 24 has no full block) and both runtimes rotate
// the inputs: the reference path verifies bitwise, the fast path agrees with it.
TEST(Export, RotatedExportInfersBitwiseAndFast) {
  fs::path d = fresh_dir("export_rot");
  for (const char* codec : {"mxfp4", "nvfp4"}) {
    const std::string path = export_with(codec, d, "hadamard");
    const Verification v = verify_export(path, VerifyOptions{});
    EXPECT_TRUE(v.bitwise_equal) << codec << ": " << v.json;
    const ExportModel m = read_export(path);
    EXPECT_NE(m.policy_text.find("rotation hadamard 0"), std::string::npos) << codec;
    const Checkpoint c = load_checkpoint(baseline());
    const ExportTensor& fc1 = m.tensors[0];  // stored rotated: its decode is near R w, not w
    ASSERT_EQ(fc1.name, c.params.begin()->first);
    const autograd::Tensor& w = c.params.begin()->second;
    autograd::Tensor wr(w.shape());
    quant::hadamard_rows(quant::Hadamard{0}, w.data(), w.dim(0), w.size() / w.dim(0), wr.data());
    const autograd::Tensor dec = fc1.decoded();
    EXPECT_GT(quant::sqnr_db(wr.data(), dec.data(), w.size()), quant::sqnr_db(w.data(), dec.data(), w.size()) + 10);
    expect_fast_agrees(m, path, codec);
  }
}

TEST(Sha256, KnownVectors) {
  EXPECT_EQ(sha256_hex("", 0), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(sha256_hex("abc", 3), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  const std::string two = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
  EXPECT_EQ(sha256_hex(two.data(), two.size()),
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
  const std::string million(1000000, 'a');
  Sha256 s;
  for (size_t i = 0; i < million.size(); i += 999) s.update(million.data() + i, std::min<size_t>(999, million.size() - i));
  EXPECT_EQ(s.hex(), "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

TEST(JsonRead, ValuesAndErrors) {
  const Json j = Json::parse(R"({"a": 1.5, "b": [true, null, "x\n\u00e9"], "c": {"d": -2e3}})", "t.json");
  EXPECT_EQ(j.at("a").number(), 1.5);
  EXPECT_TRUE(j.at("b").array()[0].boolean());
  EXPECT_TRUE(std::isnan(j.at("b").array()[1].number()));
  EXPECT_EQ(j.at("b").array()[2].string(), "x\n\xc3\xa9");
  EXPECT_EQ(j.at("c").at("d").number(), -2000);
  expect_error([&] { j.at("zz"); }, {"t.json", "zz"});
  expect_error([&] { Json::parse(R"({"a": 1,})", "bad.json"); }, {"bad.json", "byte"});
  expect_error([&] { Json::parse(R"({"a": 1} x)", "bad.json"); }, {"after the value"});
}

}  // namespace
}  // namespace mxqat::trainers
