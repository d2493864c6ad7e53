// Careless or hostile input (issue 14): the integrity block in front of HDF5 (truncation, a
// flipped byte, foreign and pre-integrity files), hostile files that pass it (re-sealed after an
// edit: hard-link loops, out-of-range attributes, a deleted crc32, NaN weights), temporaries and
// links, stale temporaries, the run-directory lock, metrics.jsonl after a resume, FIFOs and
// gzip bombs as datasets, a full disk, and paths or sizes that must be refused before allocating.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <hdf5.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include <cfloat>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <thread>

#include "tests/fuzz/fuzz_util.h"
#include "tests/test_util.h"
#include "trainers/io/ckpt.h"
#include "trainers/io/h5file.h"
#include "trainers/data/data.h"
#include "trainers/stages/export_stage.h"
#include "trainers/util/files.h"
#include "trainers/io/integrity.h"
#include "trainers/train/loop.h"
#include "trainers/util/json_write.h"
#include "trainers/stages/train_stage.h"

namespace mxqat::trainers {
namespace {

namespace fs = std::filesystem;
using autograd::Tensor;
using namespace mxqat::testing;  // expect_error, error_of, fresh_dir, run_cli, CliResult

const char* kTiny = R"(name: hard
seed: 5
data: {dataset: fashion_mnist, batch_size: 32, val_size: 100, train_limit: 400, test_limit: 100}
model: {type: mlp, hidden: [12], activation: relu}
train: {steps: 8, log_every: 2, eval_every: 4, optimizer: {type: adamw, lr: 2.0e-3}}
quant: {weight: mxfp4, input: none}
)";

std::string slurp(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}
void write(const fs::path& p, const std::string& text) { std::ofstream(p, std::ios::binary) << text; }

Checkpoint small_checkpoint() {
  Checkpoint c;
  c.recipe_text = "seed: 1\n";
  c.step = 4;
  c.epoch = 1;
  c.params.emplace_back("fc.weight", Tensor({2, 3}, {1, 2, 3, 4, 5, 6}));
  c.params.emplace_back("fc.bias", Tensor({2}, {0.5f, -0.5f}));
  c.optimizer_state.emplace_back("fc.weight/m", Tensor({2, 3}, {0, 0, 0, 0, 0, 0}));
  c.counters["skipped_steps"] = 0;
  return c;
}

// A CLI run that must fail cleanly: exit 1, every part of `want` in its output, none of `never`
// (plus the signs of an unhandled failure).
void expect_refused(const CliResult& r, const std::vector<std::string>& want,
                    std::vector<std::string> never = {}) {
  EXPECT_EQ(r.code, 1) << r.out;
  never.insert(never.end(), {"unexpected error", "bad_alloc", "filesystem error"});
  for (const std::string& w : want) EXPECT_NE(r.out.find(w), std::string::npos) << "missing '" << w << "' in: " << r.out;
  for (const std::string& n : never) EXPECT_EQ(r.out.find(n), std::string::npos) << "unwanted '" << n << "' in: " << r.out;
}

// Edits a sealed file with the raw HDF5 API, then re-seals it: a hostile file that passes the
// integrity block, so the checks behind it are what is tested.
void edit_and_reseal(const std::string& path, const std::function<void(hid_t)>& edit) {
  hid_t f = H5Fopen(path.c_str(), H5F_ACC_RDWR, H5P_DEFAULT);
  ASSERT_GE(f, 0) << path;
  edit(f);
  H5Fclose(f);
  seal_file(path);
}

// A checkpoint trained for real (tiny), shared by the tests that need a model to go with it.
const fs::path& trained_run() {
  static const fs::path dir = [] {
    fs::path d = fresh_dir("hard_run");
    train(parse_recipe(kTiny, "<hard>"), TrainOptions{d.string(), false, -1});
    return d;
  }();
  return dir;
}

// ---- the integrity block -------------------------------------------------------------------

TEST(Integrity, TruncatedDamagedAndForeignFilesNeverReachHdf5) {
  fs::path d = fresh_dir("integrity");
  const std::string ck = (d / "c.h5").string();
  save_checkpoint(ck, small_checkpoint());
  EXPECT_EQ(slurp(ck).substr(0, 8), "MXQATH5\n");
  EXPECT_EQ(load_checkpoint(ck).step, 4);

  fs::copy_file(ck, d / "t.h5");
  fs::resize_file(d / "t.h5", fs::file_size(ck) - 1);  // one byte short
  expect_error([&] { load_checkpoint((d / "t.h5").string()); }, {"t.h5", "truncated", "regenerate"});

  // A flipped byte in the block's text, the HDF5 superblock, the data: each caught by the
  // integrity block itself (before HDF5 or the datasets' CRCs could see it).
  for (auto [at, says] : {std::pair<size_t, const char*>{100, "damaged integrity block"},
                          {600, "SHA-256"}, {fs::file_size(ck) - 3, "SHA-256"}}) {
    std::string bytes = slurp(ck);
    bytes[at] = static_cast<char>(bytes[at] ^ 0x40);
    write(d / "f.h5", bytes);
    const std::string msg = error_of([&] { load_checkpoint((d / "f.h5").string()); });
    EXPECT_NE(msg.find("f.h5"), std::string::npos) << at << ": " << msg;
    EXPECT_NE(msg.find(says), std::string::npos) << at << ": " << msg;
    EXPECT_NE(msg.find("regenerate"), std::string::npos) << at << ": " << msg;
  }
  write(d / "long.h5", slurp(ck) + "x");
  expect_error([&] { load_checkpoint((d / "long.h5").string()); }, {"long.h5", "appended"});

  // An HDF5 file without the block (another program, or an mxqat from before the blocks).
  hid_t f = H5Fcreate((d / "plain.h5").c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
  H5Fclose(f);
  expect_error([&] { load_checkpoint((d / "plain.h5").string()); },
               {"plain.h5", "without mxqat's integrity block", "regenerate"});
  write(d / "empty.h5", "");
  expect_error([&] { load_checkpoint((d / "empty.h5").string()); }, {"empty.h5", "not a file written by mxqat"});
  // A newer block version is named as such.
  std::string bytes = slurp(ck);
  bytes[8] = 9;
  write(d / "v9.h5", bytes);
  expect_error([&] { load_checkpoint((d / "v9.h5").string()); }, {"v9.h5", "version 9", "newer mxqat"});
  fs::remove_all(d);
}

TEST(Integrity, FifoAndDirectoryAreRefusedWithoutBlocking) {
  fs::path d = fresh_dir("integrity_fifo");
  ASSERT_EQ(::mkfifo((d / "p.h5").c_str(), 0644), 0);
  expect_error([&] { load_checkpoint((d / "p.h5").string()); }, {"p.h5", "not a regular file"});
  expect_error([&] { load_checkpoint(d.string()); }, {"is a directory"});
  fs::remove_all(d);
}

// Files from before the integrity block: `mxqat seal` validates them in a child process and
// rewrites them sealed; the refusal names that command.
TEST(Integrity, OldFilesAreSealedByTheSealCommand) {
  fs::path d = fresh_dir("integrity_seal");
  const std::string ck = (d / "c.h5").string(), old = (d / "old.h5").string();
  save_checkpoint(ck, small_checkpoint());
  // An old file: the same HDF5 content without mxqat's block (h5unjam removes a user block the
  // way HDF5 itself lays files out; zeroing the block is the fallback).
  if (std::system(("h5unjam -i '" + ck + "' -o '" + old + "' > /dev/null 2>&1").c_str()) != 0) {
    std::string bytes = slurp(ck);
    std::fill(bytes.begin(), bytes.begin() + 512, '\0');
    write(old, bytes);
  }
  expect_error([&] { load_checkpoint(old); }, {"old.h5", "without mxqat's integrity block", "mxqat seal"});
  CliResult r = run_cli("seal " + old + " --out " + (d / "new.h5").string());
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("checkpoint at step 4"), std::string::npos) << r.out;
  const Checkpoint back = load_checkpoint((d / "new.h5").string());
  EXPECT_TRUE(back.params[0].second.same_bits(small_checkpoint().params[0].second));
  EXPECT_EQ(run_cli("seal " + old).code, 0);  // in place
  EXPECT_EQ(load_checkpoint(old).step, 4);
  EXPECT_EQ(run_cli("seal " + old).code, 0);  // already sealed: checked, left alone
  // A damaged old file ends only the child: an error, and nothing written.
  std::string bytes = slurp(ck);
  std::fill(bytes.begin(), bytes.begin() + 512, '\0');
  bytes.resize(bytes.size() - 40);
  write(d / "bad.h5", bytes);
  CliResult bad = run_cli("seal " + (d / "bad.h5").string() + " --out " + (d / "bad_new.h5").string());
  EXPECT_EQ(bad.code, 1) << bad.out;
  EXPECT_FALSE(fs::exists(d / "bad_new.h5"));
  // An export and a quantize output too.
  const std::string m = (d / "m.h5").string();
  export_checkpoint((trained_run() / "checkpoint.h5").string(), m);
  bytes = slurp(m);
  std::fill(bytes.begin(), bytes.begin() + 512, '\0');
  write(d / "m_old.h5", bytes);
  CliResult e = run_cli("seal " + (d / "m_old.h5").string());
  ASSERT_EQ(e.code, 0) << e.out;
  EXPECT_EQ(read_export((d / "m_old.h5").string()).tensors.size(), read_export(m).tensors.size());
  fs::remove_all(d);
}

// ---- hostile files that pass the block -----------------------------------------------------

TEST(Hostile, HardLinkLoopIsAnErrorNotARecursion) {
  fs::path d = fresh_dir("hostile_loop");
  const std::string ck = (d / "c.h5").string();
  save_checkpoint(ck, small_checkpoint());
  edit_and_reseal(ck, [](hid_t f) { H5Lcreate_hard(f, "/optimizer", f, "/optimizer/fc.weight/loop", H5P_DEFAULT, H5P_DEFAULT); });
  expect_error([&] { load_checkpoint(ck); }, {"c.h5", "reached a second time"});
  expect_refused(run_cli("inspect " + ck), {"reached a second time"});
  fs::remove_all(d);
}

void set_root_i64(hid_t f, const char* name, int64_t v) {
  hid_t a = H5Aopen(f, name, H5P_DEFAULT);
  H5Awrite(a, H5T_NATIVE_INT64, &v);
  H5Aclose(a);
}

TEST(Hostile, AttributesAreRangeChecked) {
  fs::path d = fresh_dir("hostile_attr");
  const std::string ck = (d / "c.h5").string();
  for (int64_t step : {int64_t{-5}, int64_t{1} << 50}) {
    save_checkpoint(ck, small_checkpoint());
    edit_and_reseal(ck, [&](hid_t f) { set_root_i64(f, "step", step); });
    expect_error([&] { load_checkpoint(ck); }, {"c.h5", "claims step " + std::to_string(step), "damaged"});
  }
  // A step beyond the run: train --resume refuses it instead of running from there.
  const fs::path run = fresh_dir("hostile_resume");
  fs::copy_file(trained_run() / "checkpoint.h5", run / "checkpoint.h5");
  edit_and_reseal((run / "checkpoint.h5").string(), [](hid_t f) { set_root_i64(f, "step", 9); set_root_i64(f, "epoch", 0); });
  expect_error([&] { train(parse_recipe(kTiny, "<hard>"), TrainOptions{run.string(), true, -1}); },
               {"step 9", "8 steps"});
  fs::remove_all(d);
  fs::remove_all(run);
}

TEST(Hostile, MissingCrcIsAnErrorNotAPass) {
  fs::path d = fresh_dir("hostile_crc");
  const std::string ck = (d / "c.h5").string();
  save_checkpoint(ck, small_checkpoint());
  edit_and_reseal(ck, [](hid_t f) { H5Adelete_by_name(f, "/params/fc.bias", "crc32", H5P_DEFAULT); });
  expect_error([&] { load_checkpoint(ck); }, {"c.h5", "/params/fc.bias", "lacks its crc32"});
  save_checkpoint(ck, small_checkpoint());
  edit_and_reseal(ck, [](hid_t f) { H5Adelete_by_name(f, "/index/params", "crc32", H5P_DEFAULT); });
  expect_error([&] { load_checkpoint(ck); }, {"/index/params", "lacks its crc32"});
  fs::remove_all(d);
}

TEST(Hostile, NonFiniteWeightsAreNamedByEvalQatExportAndVerify) {
  fs::path d = fresh_dir("hostile_nan");
  Checkpoint c = load_checkpoint((trained_run() / "checkpoint.h5").string());
  c.params[2].second[3] = NAN;  // fc2.weight
  const std::string ck = (d / "nan.h5").string();
  save_checkpoint(ck, c);
  const std::string name = c.params[2].first;
  for (const std::string& cmd : {"eval " + ck, "export " + ck + " --out " + (d / "m.h5").string(),
                                 "qat " + (trained_run() / "recipe.yaml").string() + " --from " + ck +
                                     " --out " + (d / "q").string() + " --set qat.steps=2"}) {
    CliResult r = run_cli(cmd);
    EXPECT_EQ(r.code, 1) << cmd << ": " << r.out;
    EXPECT_NE(r.out.find(name), std::string::npos) << cmd << ": " << r.out;
    EXPECT_NE(r.out.find("nan"), std::string::npos) << cmd << ": " << r.out;
  }
  EXPECT_FALSE(fs::exists(d / "m.h5"));
  // verify against a NaN checkpoint: the export is fine, the checkpoint is refused by name.
  const std::string m = (d / "good.h5").string();
  export_checkpoint((trained_run() / "checkpoint.h5").string(), m);
  CliResult r = run_cli("verify " + m + " --against " + ck);
  EXPECT_EQ(r.code, 1) << r.out;
  EXPECT_NE(r.out.find(name), std::string::npos) << r.out;
  fs::remove_all(d);
}

// ---- verify is read-only ---------------------------------------------------------------------

TEST(Verify, LeavesTheExportAloneAndNamesAWrongCheckpoint) {
  fs::path d = fresh_dir("verify_ro");
  const std::string m = (d / "m.h5").string();
  export_checkpoint((trained_run() / "checkpoint.h5").string(), m);
  fs::permissions(m, fs::perms::owner_read | fs::perms::group_read | fs::perms::others_read);
  const std::string before = slurp(m);
  const auto mtime = fs::last_write_time(m);
  CliResult ok = run_cli("verify " + m + " --limit 20");
  EXPECT_EQ(ok.code, 0) << ok.out;
  EXPECT_EQ(slurp(m), before);
  EXPECT_EQ(fs::last_write_time(m), mtime);
  EXPECT_NE(slurp(d / "m.verify.json").find("\"bitwise_equal\": true"), std::string::npos);
  EXPECT_EQ(read_export(m).verification, "null");

  // Another checkpoint of the same model: named as not the source, nothing written anywhere.
  Checkpoint other = load_checkpoint((trained_run() / "checkpoint.h5").string());
  other.params[0].second[0] += 1.0f;
  const std::string wrong = (d / "other.h5").string();
  save_checkpoint(wrong, other);
  fs::remove(d / "m.verify.json");
  CliResult bad = run_cli("verify " + m + " --against " + wrong);
  EXPECT_EQ(bad.code, 1) << bad.out;
  EXPECT_NE(bad.out.find("is not the checkpoint"), std::string::npos) << bad.out;
  EXPECT_NE(bad.out.find(other.params[0].first), std::string::npos) << bad.out;
  EXPECT_EQ(bad.out.find("bug"), std::string::npos) << bad.out;
  EXPECT_FALSE(fs::exists(d / "m.verify.json"));
  EXPECT_EQ(slurp(m), before);

  // --record writes into the export, and only then.
  fs::permissions(m, fs::perms::owner_write, fs::perm_options::add);
  VerifyOptions vo;
  vo.limit = 20;
  vo.record = true;
  vo.out = (d / "r.json").string();
  EXPECT_TRUE(verify_export(m, vo).bitwise_equal);
  EXPECT_NE(read_export(m).verification.find("\"bitwise_equal\": true"), std::string::npos);
  fs::remove_all(d);
}

TEST(Inspect, DamagedCheckpointIsCalledDamaged) {
  fs::path d = fresh_dir("inspect_damaged");
  const std::string ck = (d / "c.h5").string();
  save_checkpoint(ck, small_checkpoint());
  std::string bytes = slurp(ck);
  bytes[bytes.size() / 2] ^= 1;
  write(ck, bytes);
  expect_refused(run_cli("inspect " + ck), {"damaged"}, {"not an mxqat export"});
  fs::remove_all(d);
}

// ---- temporaries, links, locks, metrics ------------------------------------------------------

TEST(Files, TemporariesAreUnpredictableAndLinksAreNotFollowed) {
  fs::path d = fresh_dir("files_links");
  const std::string a = temp_path_for((d / "x.h5").string()), b = temp_path_for((d / "x.h5").string());
  EXPECT_NE(a, b);
  EXPECT_NE(a.find(kTempMarker), std::string::npos);
  // A link planted at the final name is replaced, its target untouched.
  write(d / "victim.txt", "precious");
  fs::create_symlink(d / "victim.txt", d / "c.h5");
  save_checkpoint((d / "c.h5").string(), small_checkpoint());
  EXPECT_EQ(slurp(d / "victim.txt"), "precious");
  EXPECT_FALSE(fs::is_symlink(d / "c.h5"));
  fs::create_symlink(d / "victim.txt", d / "s.json");
  write_file_atomic((d / "s.json").string(), "{}");
  EXPECT_EQ(slurp(d / "victim.txt"), "precious");
  // metrics.jsonl is never appended through a link.
  fs::create_symlink(d / "victim.txt", d / "metrics.jsonl");
  JsonlWriter w;
  expect_error([&] { w.open((d / "metrics.jsonl").string(), 0); }, {"metrics.jsonl", "symbolic link"});
  EXPECT_EQ(slurp(d / "victim.txt"), "precious");
  // No temporary is left behind.
  for (const auto& e : fs::directory_iterator(d))
    EXPECT_EQ(e.path().string().find(kTempMarker), std::string::npos) << e.path();
  fs::remove_all(d);
}

TEST(Files, StaleTemporariesAreRemovedAndTheRunDirectoryIsLocked) {
  fs::path d = fresh_dir("files_lock");
  write(d / ("checkpoint.h5" + std::string(kTempMarker) + "0123456789abcdef"), "half");
  write(d / "keep.txt", "mine");
  {
    const DirLock lock(d.string());
    EXPECT_EQ(remove_stale_temps(d.string()), 1);
    EXPECT_TRUE(fs::exists(d / "keep.txt"));
    const std::string msg = error_of([&] { DirLock second(d.string()); });
    EXPECT_NE(msg.find("in use by another mxqat process (pid " + std::to_string(::getpid())), std::string::npos) << msg;
    // The same through the CLI: a second train into a locked directory stops at once.
    write(d / "r.yaml", kTiny);
    CliResult r = run_cli("train " + (d / "r.yaml").string() + " --out " + d.string());
    EXPECT_EQ(r.code, 1) << r.out;
    EXPECT_NE(r.out.find("in use by another mxqat process"), std::string::npos) << r.out;
  }
  DirLock again(d.string());  // released with the first
  fs::remove_all(d);
}

// metrics.jsonl lines without their timing fields (which differ from run to run).
std::string untimed(const std::string& text) {
  std::string out;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) {
    for (const char* key : {"\"wall_s\"", "\"seconds\"", "\"samples_per_s\"", "\"tokens_per_s\"", "\"step_ms\"", "\"elapsed_s\""}) {
      size_t k = line.find(key);
      if (k == std::string::npos) continue;
      size_t end = line.find_first_of(",}", k);
      line.erase(k, end - k);
    }
    out += line + "\n";
  }
  return out;
}

TEST(Files, MetricsAfterResumeEqualAnUninterruptedRun) {
  const Recipe r = parse_recipe(kTiny, "<hard>");
  fs::path a = fresh_dir("metrics_full"), b = fresh_dir("metrics_resumed");
  train(r, TrainOptions{a.string(), false, -1});
  train(r, TrainOptions{b.string(), false, 4});
  // Lines written after the checkpoint (a kill between the two) must not stay twice.
  {
    std::ofstream(b / "metrics.jsonl", std::ios::app) << "{\"stage\": \"train\", \"step\": 5, \"loss\": 1}\n";
  }
  train(r, TrainOptions{b.string(), true, -1});
  const std::string full = slurp(a / "metrics.jsonl"), resumed = slurp(b / "metrics.jsonl");
  ASSERT_FALSE(full.empty());
  EXPECT_EQ(untimed(resumed), untimed(full));
  // A fresh run into the same directory starts the file over.
  train(r, TrainOptions{b.string(), false, -1});
  EXPECT_EQ(untimed(slurp(b / "metrics.jsonl")), untimed(full));
  fs::remove_all(a);
  fs::remove_all(b);
}

// ---- datasets --------------------------------------------------------------------------------

void write_gz(const fs::path& p, const std::string& bytes) {
  gzFile f = gzopen(p.c_str(), "wb");
  gzwrite(f, bytes.data(), static_cast<unsigned>(bytes.size()));
  gzclose(f);
}
std::string be32(uint32_t v) {
  return {char(v >> 24), char(v >> 16), char(v >> 8), char(v)};
}

TEST(Datasets, FifoDeviceAndGzipBombAreRefused) {
  fs::path d = fresh_dir("datasets");
  std::vector<int64_t> dims;
  ASSERT_EQ(::mkfifo((d / "fifo.gz").c_str(), 0644), 0);
  expect_error([&] { read_idx((d / "fifo.gz").string(), 1, dims); }, {"fifo.gz", "not a regular file"});
  expect_error([&] { read_idx("/dev/zero", 1, dims); }, {"/dev/zero", "not a regular file"});
  // A header claiming 2^32 x 2^32 x 2^32 bytes: refused before reading or allocating.
  write_gz(d / "huge.gz", be32(0x0803) + be32(0xFFFFFFFF) + be32(0xFFFFFFFF) + be32(0xFFFFFFFF));
  expect_error([&] { read_idx((d / "huge.gz").string(), 3, dims); }, {"huge.gz", "claims dimension"});
  // A small claim followed by 64 MiB of zeros (a bomb): inflation stops at the claim.
  write_gz(d / "bomb.gz", be32(0x0801) + be32(10) + std::string(size_t{64} << 20, '\0'));
  expect_error([&] { read_idx((d / "bomb.gz").string(), 1, dims); }, {"bomb.gz", "promises 10 bytes", "more"});
  write_gz(d / "ok.gz", be32(0x0801) + be32(3) + std::string("\1\2\3"));
  EXPECT_EQ(read_idx((d / "ok.gz").string(), 1, dims), (std::vector<uint8_t>{1, 2, 3}));
  fs::remove_all(d);
}

// ---- refused before allocating -----------------------------------------------------------------

TEST(Refuse, BadOutputDirectoriesHugeModelsAndGroups) {
  fs::path d = fresh_dir("refuse");
  write(d / "r.yaml", kTiny);
  write(d / "file", "x");
  const std::string recipe = (d / "r.yaml").string();
  expect_refused(run_cli("train " + recipe + " --out " + (d / "file" / "run").string()),
                 {"cannot create the output directory", "--out"});
  expect_refused(run_cli("train " + recipe + " --out " + (d / std::string(300, 'a')).string()),
                 {"component of 300 characters", "shorter name"});
  expect_refused(run_cli("train " + recipe + " --out " + (d / "h").string() + " --set model.hidden=[4000000000]"),
                 {"parameters", "make the model smaller"});
  std::ofstream(d / "x.f32", std::ios::binary) << std::string(3 * 37 * 4, '\0');
  expect_refused(run_cli("quantize --codec int8_sym --group-size 4294967296 --in " + (d / "x.f32").string() +
                         " --shape 3,37 --out " + (d / "q.h5").string()),
                 {"--group-size", "4294967296"});
  fs::remove_all(d);
}

TEST(Refuse, QuantizeRefusesNonFiniteInput) {
  fs::path d = fresh_dir("refuse_nan");
  std::vector<float> x(2 * 8, 1.0f);
  x[11] = INFINITY;
  std::ofstream(d / "x.f32", std::ios::binary).write(reinterpret_cast<const char*>(x.data()), 64);
  CliResult r = run_cli("quantize --codec mxfp8_e4m3 --in " + (d / "x.f32").string() + " --shape 2,8 --out " +
                        (d / "q.h5").string());
  EXPECT_EQ(r.code, 1) << r.out;
  EXPECT_NE(r.out.find("(1, 3)"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("inf"), std::string::npos) << r.out;
  EXPECT_FALSE(fs::exists(d / "q.h5"));
  fs::remove_all(d);
}

// A full disk while HDF5 writes (RLIMIT_FSIZE with SIGXFSZ ignored: writes fail with EFBIG):
// the message, then a clean exit 1, no crash at exit and no file left behind.
TEST(Refuse, FullDiskIsAMessageAndACleanExit) {
  fs::path d = fresh_dir("fulldisk");
  std::vector<float> x(64 * 4096, 0.25f);
  std::ofstream(d / "x.f32", std::ios::binary).write(reinterpret_cast<const char*>(x.data()), x.size() * 4);
  const std::string cmd = "sh -c 'trap \"\" XFSZ; ulimit -f 64; exec " + std::string(MXQAT_BINARY) +
                          " quantize --codec int8_sym --in " + (d / "x.f32").string() + " --shape 64,4096 --out " +
                          (d / "q.h5").string() + "' 2>&1";
  FILE* p = ::popen(cmd.c_str(), "r");
  std::string out;
  char buf[4096];
  for (size_t n; (n = std::fread(buf, 1, sizeof buf, p)) > 0;) out.append(buf, n);
  const int status = ::pclose(p);
  ASSERT_TRUE(WIFEXITED(status)) << "killed by a signal: " << out;
  EXPECT_EQ(WEXITSTATUS(status), 1) << out;
  EXPECT_NE(out.find("disk full"), std::string::npos) << out;
  EXPECT_FALSE(fs::exists(d / "q.h5"));
  for (const auto& e : fs::directory_iterator(d))
    EXPECT_EQ(e.path().string().find(kTempMarker), std::string::npos) << e.path();
  fs::remove_all(d);
}

}  // namespace
}  // namespace mxqat::trainers

namespace mxqat::trainers {
namespace {

// The fuzz targets' plumbing (tests/fuzz/fuzz_util.h): the input reaches the loaders and HDF5
// (an earlier version handed HDF5 a memfd, which it cannot open: every input stopped there), and
// a re-sealed mutant gets past the integrity block to HDF5 and the
// checkpoint's own checks (here the CRC-32 of the dataset whose byte was flipped), which is what
// the checkpoint and export targets' second pass fuzzes.
TEST(FuzzHarness, ResealedMutantReachesHdf5AndTheChecksBehindIt) {
  std::ifstream in(std::string(MXQAT_SOURCE_DIR) + "/tests/fuzz/corpus/checkpoint/tiny_mlp_sgd",
                   std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  ASSERT_GT(bytes.size(), 4096u);
  const std::string path = fuzz::write_input("ckpt.h5", bytes.data(), bytes.size());
  const Checkpoint c = load_checkpoint(path);
  ASSERT_FALSE(c.params.empty());
  EXPECT_TRUE(fuzz::resealed(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size()).empty())
      << "an intact file needs no re-sealing";
  // Flip one byte of a float in /params: the integrity block refuses the mutant ...
  std::string mutant = bytes;
  const auto* first = reinterpret_cast<const char*>(c.params.front().second.data());
  const size_t at = mutant.find(std::string(first, 16));
  ASSERT_NE(at, std::string::npos) << "the first parameter's bytes are stored uncompressed";
  mutant[at + 1] ^= 0x40;
  const std::string damaged = fuzz::write_input("ckpt.h5", mutant.data(), mutant.size());
  EXPECT_THAT([&] { load_checkpoint(damaged); },
              ::testing::ThrowsMessage<Error>(::testing::HasSubstr("the SHA-256 of its contents")));
  // ... and its re-sealed copy reaches HDF5, whose read is caught by the dataset's CRC-32.
  const std::string sealed =
      fuzz::resealed(reinterpret_cast<const uint8_t*>(mutant.data()), mutant.size());
  ASSERT_EQ(sealed.size(), mutant.size());
  const std::string resealed_path = fuzz::write_input("resealed.h5", sealed.data(), sealed.size());
  EXPECT_THAT([&] { load_checkpoint(resealed_path); },
              ::testing::ThrowsMessage<Error>(::testing::HasSubstr("fails its CRC-32 check")));
}

}  // namespace
}  // namespace mxqat::trainers
