// safetensors reader/writer: round trips of every dtype, the 16-bit float conversions, and the
// refusal of damaged headers (each names the tensor and the numbers).
#include "trainers/interop/safetensors.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "autograd/error.h"
#include "trainers/util/json_write.h"

namespace mxqat::trainers {
namespace {

std::string temp_path(const std::string& name) {
  const auto dir = std::filesystem::temp_directory_path() / "mxqat_safetensors_test";
  std::filesystem::create_directories(dir);
  return (dir / name).string();
}

// A file with a hand-written header followed by `data_bytes` zero bytes.
std::string raw_file(const std::string& name, const std::string& header, size_t data_bytes,
                     uint64_t claimed_len = 0) {
  std::string out;
  const uint64_t n = claimed_len ? claimed_len : header.size();
  for (int k = 0; k < 8; ++k) out += static_cast<char>((n >> (8 * k)) & 0xFF);
  out += header;
  out += std::string(data_bytes, '\0');
  const std::string p = temp_path(name);
  write_file_atomic(p, out);
  return p;
}

void expect_error(const std::string& path, const std::string& needle) {
  try {
    SafetensorsReader r(path);
    FAIL() << "no error for " << path;
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
  }
}

TEST(Safetensors, HalfConversionsRoundTripEveryValue) {
  for (uint32_t h = 0; h < 65536; ++h) {
    const float f = f16_to_f32(static_cast<uint16_t>(h));
    if (std::isnan(f)) {
      EXPECT_TRUE(std::isnan(f16_to_f32(f32_to_f16(f))));
      continue;
    }
    ASSERT_EQ(f32_to_f16(f), h) << "half 0x" << std::hex << h << " = " << f;
    const float b = bf16_to_f32(static_cast<uint16_t>(h));
    if (!std::isnan(b)) {
      ASSERT_EQ(f32_to_bf16(b), h);
    }
  }
  EXPECT_EQ(f16_to_f32(0x3C00), 1.f);
  EXPECT_EQ(f16_to_f32(0x0001), std::ldexp(1.f, -24));
  EXPECT_EQ(f16_to_f32(0xC000), -2.f);
}

TEST(Safetensors, NarrowingRoundsToNearestEven) {
  EXPECT_EQ(f32_to_f16(1.f / 3.f), 0x3555);
  EXPECT_EQ(f32_to_f16(65519.f), 0x7BFF);                      // below the halfway point
  EXPECT_EQ(f32_to_f16(65520.f), 0x7C00);                      // tie, to even: overflow
  EXPECT_EQ(f32_to_f16(std::ldexp(1.f, -25)), 0x0000);         // tie between 0 and 2^-24
  EXPECT_EQ(f32_to_f16(std::ldexp(3.f, -25)), 0x0002);         // tie between 1 and 2 (x 2^-24)
  EXPECT_EQ(f32_to_f16(1.f + std::ldexp(1.f, -11)), 0x3C00);   // tie, to even: 1.0
  EXPECT_EQ(f32_to_f16(1.f + std::ldexp(3.f, -11)), 0x3C02);   // tie, to even: up
  EXPECT_EQ(f32_to_f16(-0.f), 0x8000);
  EXPECT_EQ(f32_to_bf16(1.f + std::ldexp(1.f, -8)), 0x3F80);   // tie, to even
  EXPECT_EQ(f32_to_bf16(1.f + std::ldexp(3.f, -8)), 0x3F82);
  EXPECT_EQ(f32_to_bf16(1.f / 3.f), 0x3EAB);
}

TEST(Safetensors, WriteThenReadEveryDtype) {
  const std::vector<float> w = {0.5f, -1.25f, 3.f, 1.f / 3.f, -0.f, 1e-3f};
  const std::vector<uint8_t> u = {0, 1, 127, 128, 200, 255};
  SafetensorsWriter st;
  st.add_f32("a.f32", {2, 3}, w.data());
  st.add_f16("b.f16", {3, 2}, w.data());
  st.add_bf16("c.bf16", {6}, w.data());
  st.add_u8("d.u8", {6}, u.data());
  st.add_f8_e4m3("e.f8", {1, 6}, u.data());
  st.add_f32("scalar", {}, w.data());
  st.set_metadata("format", "pt");
  const std::string path = temp_path("all.safetensors");
  st.write(path);

  const std::string bytes = read_file(path);
  uint64_t n = 0;
  for (int k = 7; k >= 0; --k) n = (n << 8) | static_cast<unsigned char>(bytes[size_t(k)]);
  EXPECT_EQ(n % 8, 0u) << "header padded to 8 bytes";

  SafetensorsReader r(path);
  ASSERT_EQ(r.entries().size(), 6u);
  EXPECT_EQ(r.entries()[0].name, "a.f32");  // file order kept
  EXPECT_EQ(r.metadata().at("format"), "pt");
  EXPECT_EQ(r.at("a.f32").shape, (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(r.at("scalar").shape, std::vector<int64_t>{});
  EXPECT_EQ(r.read_f32("a.f32"), w);
  EXPECT_EQ(r.read_f32("scalar"), std::vector<float>{0.5f});
  const auto h = r.read_f32("b.f16"), b = r.read_f32("c.bf16");
  for (size_t i = 0; i < w.size(); ++i) {
    EXPECT_EQ(h[i], f16_to_f32(f32_to_f16(w[i])));
    EXPECT_EQ(b[i], bf16_to_f32(f32_to_bf16(w[i])));
  }
  EXPECT_EQ(h[1], -1.25f);
  EXPECT_EQ(r.at("e.f8").dtype, "F8_E4M3");
  EXPECT_EQ(r.read_bytes("d.u8"), u);
  EXPECT_EQ(r.read_bytes("e.f8"), u);
  EXPECT_EQ(r.find("nope"), nullptr);
  EXPECT_THROW(r.at("nope"), Error);
  try {
    r.read_f32("d.u8");
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("dtype U8"), std::string::npos) << e.what();
  }
}

TEST(Safetensors, WriterRefusesBadInput) {
  SafetensorsWriter st;
  const float x[2] = {1, 2};
  st.add_f32("x", {2}, x);
  EXPECT_THROW(st.add_f32("x", {2}, x), Error);                     // twice
  EXPECT_THROW(st.add_raw("y", "F32", {3}, {0, 0, 0, 0}), Error);   // 4 bytes for 3 floats
  EXPECT_THROW(st.add_raw("y", "Q4", {1}, {0}), Error);             // unknown dtype
  EXPECT_THROW(st.add_raw("y", "U8", {-1}, {}), Error);
}

TEST(Safetensors, RefusesDamagedHeaders) {
  expect_error(temp_path("missing.safetensors"), "cannot open");
  expect_error(raw_file("short.safetensors", "", 0, 0) /* 8 bytes: length 0 */, "header length");
  {
    const std::string p = temp_path("tiny.safetensors");
    write_file_atomic(p, "abc");
    expect_error(p, "too short");
  }
  expect_error(raw_file("long.safetensors", "{}", 0, 1ull << 40), "header length");
  expect_error(raw_file("json.safetensors", "{\"a\": [", 0), "not valid JSON");
  expect_error(raw_file("array.safetensors", "[1, 2]", 0), "not a JSON object");
  expect_error(raw_file("dtype.safetensors",
                        R"({"w":{"dtype":"Q4_K","shape":[2],"data_offsets":[0,2]}})", 2),
               "Q4_K");
  expect_error(raw_file("fields.safetensors", R"({"w":{"dtype":"F32","shape":[2]}})", 8),
               "data_offsets");
  expect_error(raw_file("outside.safetensors",
                        R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})", 4),
               "outside the data section");
  expect_error(raw_file("size.safetensors",
                        R"({"w":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})", 8),
               "needs 12");
  expect_error(raw_file("neg.safetensors",
                        R"({"w":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}})", 8),
               "non-negative integer");
  expect_error(raw_file("huge.safetensors",
                        R"({"w":{"dtype":"F32","shape":[4294967296,4294967296,16],"data_offsets":[0,8]}})",
                        8),
               "larger than");
  expect_error(raw_file("twice.safetensors",
                        R"({"w":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},)"
                        R"("w":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}})",
                        1),
               "twice");
  expect_error(raw_file("meta.safetensors", R"({"__metadata__":{"a":1}})", 0), "__metadata__");
}

}  // namespace
}  // namespace mxqat::trainers
