// Quantized tensors as docs/formats.md §9 HDF5 groups (API in ckpt_quant.h). The writer and the
// reader share one description of what a group of a given codec and shape must hold (Layout), so
// what we write is exactly what we accept; every check names the group and the object.
#include "trainers/io/ckpt_quant.h"

#include <cmath>
#include <cstring>

namespace mxqat::trainers {

using quant::BlockScheme;
using quant::Codec;
using quant::EncodedTensor;
using quant::is_int;

namespace {

constexpr const char* kPacking = "lsb_first";
constexpr int64_t kMaxElements = int64_t{1} << 50;  // far above any tensor; keeps sizes exact
constexpr int64_t kMaxGroup = int64_t{1} << 31;


std::string known_codecs() {
  std::string known;
  for (const std::string& n : Codec::names()) known += (known.empty() ? "" : ", ") + n;
  return known;
}

// "a/b" from "/a/b"; refuses names that cannot be an HDF5 group path.
std::string group_path(const std::string& group) {
  std::string g = !group.empty() && group[0] == '/' ? group.substr(1) : group;
  bool ok = !g.empty();
  for (size_t start = 0; ok && start <= g.size();) {
    const size_t end = std::min(g.find('/', start), g.size());
    const std::string part = g.substr(start, end - start);
    ok = !part.empty() && part != "." && part != "..";
    start = end + 1;
  }
  MXQAT_CHECK(ok, "quantized tensor name '", group,
              "' cannot be an HDF5 group path (empty, a trailing or double '/', or a '.' or '..' "
              "part); use a parameter name such as 'blocks.0/fc1.weight'");
  return g;
}

// What a §9 group of codec `fmt` for a tensor of `shape` holds.
struct Layout {
  const quant::BlockFormat* fmt;
  int64_t R, K;            // the [R, K] view (spec §7)
  int64_t block_size, nb;  // G (INT) or the format's block; blocks per row
  int64_t bytes_per_row;   // of `codes` (spec §8)
};

// at: "quantized tensor 'g' in 'file'", the prefix of every message.
Layout layout_of(const std::string& at, const std::string& codec, const Shape& shape,
                 int64_t block_size) {
  const quant::BlockFormat* fmt = quant::find_block_format(codec);
  MXQAT_CHECK(fmt, at, ": unknown codec \"", codec, "\"; known: ", known_codecs(),
              " (spec §9; written by a newer mxqat?)");
  MXQAT_CHECK(!shape.empty() && shape.back() >= 1, at, ": shape ", autograd::shape_str(shape),
              " is invalid; the block axis (the last) needs at least one element");
  int64_t n = 1;
  for (int64_t d : shape) {
    MXQAT_CHECK(d >= 0 && (d == 0 || n <= kMaxElements / d), at, ": shape ",
                autograd::shape_str(shape), " has a negative or absurdly large dimension");
    n *= d;
  }
  if (is_int(fmt->scheme)) {
    MXQAT_CHECK(block_size >= 1 && block_size <= kMaxGroup, at, ": block_size ", block_size,
                " is invalid for codec ", codec, " (INT groups hold 1 to 2^31 elements)");
  } else {
    MXQAT_CHECK(block_size == fmt->block, at, ": block_size ", block_size, " is invalid for codec ",
                codec, " (its blocks hold ", fmt->block, " elements, spec §4/§5)");
  }
  const Codec c = Codec::make(codec, {quant::ScaleRule::kFloor,
                                      is_int(fmt->scheme) ? block_size : 0, std::nullopt});
  const int64_t K = shape.back(), R = n / K, bytes_per_row = c.bytes_per_row(K);
  MXQAT_CHECK(R == 0 || bytes_per_row <= kMaxElements / R, at, ": ", R, " rows of ",
              bytes_per_row, " code bytes is absurdly large (block_size ", block_size, ")");
  return {fmt, R, K, block_size, c.num_blocks(K), bytes_per_row};
}

// NVFP4's S_enc and S_dec follow from A (spec §5 steps 1-3); a mismatch means damage.
void check_nvfp4_globals(const std::string& at, float A, float s_enc, float s_dec) {
  MXQAT_CHECK(std::isfinite(A) && A >= 0.0f, at, ": global_amax ", A,
              " must be finite and >= 0 (spec §5 step 1)");
  const quant::Nvfp4Global g =
      Codec::make("nvfp4", {quant::ScaleRule::kFloor, 0, A}).nvfp4_global(nullptr, 0, 1);
  auto same = [](float a, float b) { return std::memcmp(&a, &b, sizeof a) == 0; };
  MXQAT_CHECK(same(s_enc, g.encode_scale) && same(s_dec, g.decode_scale), at,
              ": global_encode_scale ", s_enc, " / global_decode_scale ", s_dec,
              " do not follow from global_amax ", A, " (spec §5 steps 2-3 give ", g.encode_scale,
              " / ", g.decode_scale, "); the group is damaged or was written by another rule");
}

// Sizes of e's arrays against the layout (the writer's check; the reader checks the datasets).
void check_sizes(const std::string& at, const Layout& L, const EncodedTensor& e) {
  MXQAT_CHECK(e.rows == L.R && e.cols == L.K, at, ": the encoded tensor is [", e.rows, ", ",
              e.cols, "] but the logical shape gives [", L.R, ", ", L.K, "]");
  auto check = [&](size_t found, int64_t cols, const char* what) {
    MXQAT_CHECK(found == static_cast<size_t>(L.R * cols), at, ": ", found, " ", what,
                ", expected ", L.R, " x ", cols);
  };
  check(e.codes.size(), L.bytes_per_row, "code bytes");
  const bool asym = L.fmt->scheme == BlockScheme::kIntAsym;
  check(is_int(L.fmt->scheme) ? e.scales.size() : e.scale_codes.size(), L.nb, "scales");
  check(e.zero_points.size(), asym ? L.nb : 0, "zero points");
}

// Zero points lie in [0, qmax] (spec §6: z is clamped), so 4-bit ones fit a nibble.
void check_zero_points(const std::string& at, const Layout& L, const std::vector<uint8_t>& zp) {
  const int qmax = (1 << L.fmt->element_bits) - 1;
  for (uint8_t z : zp)
    MXQAT_CHECK(z <= qmax, at, ": zero point ", int{z}, " is outside [0, ", qmax, "] (spec §6)");
}

// ---- reading: each object checked before use ----

std::string need_string(const H5File& f, const std::string& g, const std::string& at,
                        const char* name) {
  MXQAT_CHECK(f.has_attr(g, name), at, ": attribute '", name, "' is missing (spec §9)");
  return f.attr_string(g, name);
}

int64_t need_int(const H5File& f, const std::string& g, const std::string& at, const char* name) {
  MXQAT_CHECK(f.has_attr(g, name), at, ": attribute '", name, "' is missing (spec §9)");
  return f.attr_i64(g, name);
}

float need_f32(const H5File& f, const std::string& g, const std::string& at, const char* name) {
  MXQAT_CHECK(f.has_attr(g, name), at, ": attribute '", name, "' is missing (spec §9, NVFP4)");
  return f.attr_f32(g, name);  // float32 only: a float64 copy may have lost bits
}

template <class T>
std::vector<T> need_dataset(const H5File& f, const std::string& g, const std::string& at,
                            const char* name, const Shape& expected) {
  const std::string path = g + "/" + name;
  MXQAT_CHECK(f.is_dataset(path), at, ": dataset '", name, "' is missing (spec §9)");
  const DatasetInfo i = f.info(path);
  MXQAT_CHECK(i.dtype == trainers::dtype_of<T>(), at, ": dataset '", name, "' holds ",
              dtype_name(i.dtype), " but spec §9 stores ", dtype_name(trainers::dtype_of<T>()));
  MXQAT_CHECK(i.shape == expected, at, ": dataset '", name, "' has shape ",
              autograd::shape_str(i.shape), " but ", autograd::shape_str(expected),
              " was expected for its codec and shape (truncated or mislabelled data?)");
  return f.read_expect<T>(path, expected);
}

EncodedTensor read_checked(const H5File& f, const std::string& g, const std::string& at,
                           Shape* logical_shape) {
  const int64_t version = need_int(f, g, at, "spec_version");
  MXQAT_CHECK(version == kQuantSpecVersion, at, " is spec_version ", version,
              ", this build reads spec_version ", kQuantSpecVersion,
              " (docs/formats.md); re-quantize it with this build or read it with a newer mxqat");
  EncodedTensor e;
  e.codec = need_string(f, g, at, "codec");
  MXQAT_CHECK(quant::find_block_format(e.codec), at, ": unknown codec \"", e.codec,
              "\"; known: ", known_codecs(), " (spec §9; written by a newer mxqat?)");
  const std::string packing = need_string(f, g, at, "packing");
  MXQAT_CHECK(packing == kPacking, at, ": packing \"", packing, "\" is not \"", kPacking,
              "\", the only packing of spec §8");
  MXQAT_CHECK(f.has_attr(g, "shape"), at, ": attribute 'shape' is missing (spec §9)");
  const Shape shape = f.attr_i64s(g, "shape");
  const Layout L = layout_of(at, e.codec, shape, need_int(f, g, at, "block_size"));
  const int64_t axis = need_int(f, g, at, "block_axis");
  MXQAT_CHECK(axis == static_cast<int64_t>(shape.size()) - 1, at, ": block_axis ", axis,
              " is not the last axis (", shape.size() - 1, ") of shape ",
              autograd::shape_str(shape), "; spec v1 blocks along the last axis only");
  const int64_t bits = need_int(f, g, at, "element_bits");
  MXQAT_CHECK(bits == L.fmt->element_bits, at, ": element_bits ", bits, " does not match codec ",
              e.codec, " (", L.fmt->element_bits, " bits)");
  e.rows = L.R;
  e.cols = L.K;
  e.block_size = L.block_size;
  if (L.fmt->scheme == BlockScheme::kMx) {
    const std::string rule = need_string(f, g, at, "scale_rule");
    MXQAT_CHECK(rule == "floor" || rule == "rceil", at, ": scale_rule \"", rule,
                "\" is unknown; known: floor, rceil (spec §4.2, §4.3)");
    e.scale_rule = quant::parse_scale_rule(rule);
  }
  if (L.fmt->scheme == BlockScheme::kNvfp4) {
    e.global_amax = need_f32(f, g, at, "global_amax");
    e.global_encode_scale = need_f32(f, g, at, "global_encode_scale");
    e.global_decode_scale = need_f32(f, g, at, "global_decode_scale");
    check_nvfp4_globals(at, e.global_amax, e.global_encode_scale, e.global_decode_scale);
  }
  const bool asym = L.fmt->scheme == BlockScheme::kIntAsym;
  MXQAT_CHECK(asym || !f.exists(g + "/zero_points"), at,
              ": has a 'zero_points' dataset but codec ", e.codec,
              " has none (mislabelled asymmetric data?)");
  e.codes = need_dataset<uint8_t>(f, g, at, "codes", {L.R, L.bytes_per_row});
  if (is_int(L.fmt->scheme))
    e.scales = need_dataset<float>(f, g, at, "scales", {L.R, L.nb});
  else
    e.scale_codes = need_dataset<uint8_t>(f, g, at, "scales", {L.R, L.nb});
  if (asym) {
    e.zero_points = need_dataset<uint8_t>(f, g, at, "zero_points", {L.R, L.nb});
    check_zero_points(at, L, e.zero_points);
  }
  if (logical_shape) *logical_shape = shape;
  return e;
}

}  // namespace

void write_quantized(H5Writer& w, const std::string& group, const EncodedTensor& e,
                     const Shape& logical_shape) {
  const std::string g = group_path(group);
  const std::string at = "quantized tensor '" + g + "' for '" + w.file_path() + "'";
  MXQAT_CHECK(!w.exists(g), at, ": the name is already taken in this file; names must be unique");
  const Layout L = layout_of(at, e.codec, logical_shape, e.block_size);
  check_sizes(at, L, e);
  check_zero_points(at, L, e.zero_points);
  const bool nvfp4 = L.fmt->scheme == BlockScheme::kNvfp4;
  if (nvfp4) check_nvfp4_globals(at, e.global_amax, e.global_encode_scale, e.global_decode_scale);
  WriteOptions checked;
  checked.checksum = true;  // a damaged code byte is an error on reading, not a silent change
  w.write(g + "/codes", e.codes, {L.R, L.bytes_per_row}, checked);
  if (is_int(L.fmt->scheme))
    w.write(g + "/scales", e.scales, {L.R, L.nb}, checked);
  else
    w.write(g + "/scales", e.scale_codes, {L.R, L.nb}, checked);
  if (L.fmt->scheme == BlockScheme::kIntAsym)
    w.write(g + "/zero_points", e.zero_points, {L.R, L.nb}, checked);
  w.set_attr_string(g, "codec", e.codec);
  w.set_attr_i64(g, "spec_version", kQuantSpecVersion);
  w.set_attr_i64s(g, "shape", logical_shape);
  w.set_attr_i64(g, "block_axis", static_cast<int64_t>(logical_shape.size()) - 1);
  w.set_attr_i64(g, "block_size", L.block_size);
  if (L.fmt->scheme == BlockScheme::kMx)
    w.set_attr_string(g, "scale_rule", quant::scale_rule_name(e.scale_rule));
  w.set_attr_i64(g, "element_bits", L.fmt->element_bits);
  w.set_attr_string(g, "packing", kPacking);
  if (nvfp4) {
    w.set_attr_f32(g, "global_amax", e.global_amax);
    w.set_attr_f32(g, "global_encode_scale", e.global_encode_scale);
    w.set_attr_f32(g, "global_decode_scale", e.global_decode_scale);
  }
}

EncodedTensor read_quantized(const H5File& f, const std::string& group, Shape* logical_shape) {
  const std::string g = group_path(group);
  const std::string at = "quantized tensor '" + g + "' in '" + f.file_path() + "'";
  if (!f.is_group(g)) {
    std::string have;
    for (const std::string& n : f.list("/")) have += (have.empty() ? "" : ", ") + n;
    MXQAT_FAIL(at, " does not exist", f.exists(g) ? " (it is a dataset, not a group)" : "",
               "; the file's top level holds: ", have.empty() ? "nothing" : have,
               " (pass the tensor's name with --name)");
  }
  try {
    return read_checked(f, g, at, logical_shape);
  } catch (const Error& err) {
    std::string msg = err.what();
    if (msg.rfind(at, 0) == 0) throw;  // one of ours: already names the group
    const std::string prefix = "HDF5 file '" + f.file_path() + "': ";
    if (msg.rfind(prefix, 0) == 0) msg.erase(0, prefix.size());
    throw Error(at + ": " + msg);
  }
}

Codec decoder_for(const EncodedTensor& e) {
  const quant::BlockFormat* fmt = quant::find_block_format(e.codec);
  const int64_t group = fmt && is_int(fmt->scheme) ? e.block_size : 0;
  return Codec::make(e.codec, {e.scale_rule, group, std::nullopt});
}

}  // namespace mxqat::trainers
