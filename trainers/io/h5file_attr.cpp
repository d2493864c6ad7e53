// h5file: attributes (string, int64, float32 kept as 32-bit, float64, int64[]) and string
// datasets. We write fixed-length, NUL-padded UTF-8 strings: their bytes sit inline in the object,
// so a damaged file cannot send HDF5's global-heap reader (variable-length strings) out of
// bounds. Variable-length strings written by other tools (h5py's default) are read too.
#include <algorithm>
#include <cstring>

#include "trainers/io/h5file_impl.h"

namespace mxqat::trainers {

namespace {

void check_no_nul(const H5File::Impl& f, const std::string& s, const std::string& what) {
  if (s.find('\0') != std::string::npos)
    f.fail("cannot store " + what + ": the text contains a NUL byte (HDF5 strings are C strings)");
}

// Fixed-length UTF-8 strings as wide as the longest value (HDF5 needs at least 1 byte).
struct FixedStrings {
  Handle type;
  std::vector<char> bytes;  // values back to back, each NUL-padded to the type's size
};

FixedStrings pack_strings(const std::vector<std::string>& values) {
  size_t width = 1;
  for (const std::string& v : values) width = std::max(width, v.size());
  Handle t(H5Tcopy(H5T_C_S1), H5Tclose);
  H5Tset_size(t.get(), width);
  H5Tset_strpad(t.get(), H5T_STR_NULLPAD);
  H5Tset_cset(t.get(), H5T_CSET_UTF8);
  std::vector<char> bytes(values.size() * width, '\0');
  for (size_t i = 0; i < values.size(); ++i)
    std::memcpy(bytes.data() + i * width, values[i].data(), values[i].size());
  return {std::move(t), std::move(bytes)};
}

// An open attribute with what we need to check it.
struct Attr {
  Handle id;
  std::string what;  // "attribute 'name' of '/obj'"
  H5T_class_t cls;
  size_t size;
  hssize_t count;  // elements (1 for a scalar)
};

Attr open_attr(const H5File::Impl& f, const std::string& object, const std::string& name) {
  std::string what = "attribute '" + name + "' of '" + norm_path(object) + "'";
  Handle obj = f.open_object(object);
  if (H5Aexists(obj.get(), name.c_str()) <= 0) f.fail(what + " is missing");
  Handle a(H5Aopen(obj.get(), name.c_str(), H5P_DEFAULT), H5Aclose);
  if (!a.ok()) f.fail("cannot open " + what);
  Handle type(H5Aget_type(a.get()), H5Tclose);
  Handle space(H5Aget_space(a.get()), H5Sclose);
  if (!type.ok() || !space.ok()) f.fail("cannot read the type of " + what);
  return {std::move(a), what, H5Tget_class(type.get()), H5Tget_size(type.get()),
          H5Sget_simple_extent_npoints(space.get())};
}

void read_attr(const H5File::Impl& f, const Attr& a, hid_t mem, void* out) {
  if (H5Aread(a.id.get(), mem, out) < 0) f.fail("cannot read " + a.what);
}

const char* class_name(H5T_class_t cls) {
  switch (cls) {
    case H5T_INTEGER: return "integer";
    case H5T_FLOAT: return "float";
    case H5T_STRING: return "string";
    default: return "other";
  }
}

void check_scalar(const H5File::Impl& f, const Attr& a, bool ok_type, const char* expected) {
  if (!ok_type || a.count != 1)
    f.fail(a.what + " is not a single " + expected + " (it holds " + std::to_string(a.count) +
           " " + class_name(a.cls) + " value(s) of " + std::to_string(a.size) + " bytes)");
}

}  // namespace

std::vector<std::string> read_string_values(const H5File::Impl& f, hid_t obj, bool is_attr,
                                            const std::string& what, int64_t* crc) {
  Handle type(is_attr ? H5Aget_type(obj) : H5Dget_type(obj), H5Tclose);
  Handle space(is_attr ? H5Aget_space(obj) : H5Dget_space(obj), H5Sclose);
  if (!type.ok() || !space.ok()) f.fail("cannot read the type of '" + what + "'");
  if (H5Tget_class(type.get()) != H5T_STRING) f.fail("'" + what + "' does not hold strings");
  hssize_t points = H5Sget_simple_extent_npoints(space.get());
  if (points < 0) f.fail("cannot read the shape of '" + what + "'");
  size_t n = static_cast<size_t>(points);
  // Memory type with the stored character set and padding, so HDF5 converts nothing.
  bool variable = H5Tis_variable_str(type.get()) > 0;
  size_t size = H5Tget_size(type.get());
  Handle mem(H5Tcopy(H5T_C_S1), H5Tclose);
  H5Tset_size(mem.get(), variable ? H5T_VARIABLE : size);
  H5Tset_cset(mem.get(), H5Tget_cset(type.get()));
  H5Tset_strpad(mem.get(), H5Tget_strpad(type.get()));
  auto read = [&](void* buf) {
    herr_t rc = is_attr ? H5Aread(obj, mem.get(), buf)
                        : H5Dread(obj, mem.get(), H5S_ALL, H5S_ALL, H5P_DEFAULT, buf);
    if (rc < 0) f.fail("cannot read the strings of '" + what + "'");
  };
  std::vector<std::string> out;
  if (n == 0) return out;
  if (!variable && (is_attr || !dataset_has_filters(obj))) {  // a damaged header may claim more
    hsize_t stored = is_attr ? H5Aget_storage_size(obj) : H5Dget_storage_size(obj);
    if (stored / size < n)
      f.fail("'" + what + "' claims " + std::to_string(n) + " strings of " +
             std::to_string(size) + " bytes but stores " + std::to_string(stored) +
             " bytes; the file is damaged");
  }
  out.reserve(n);
  if (variable) {
    std::vector<char*> buf(n, nullptr);
    read(buf.data());
    for (char* s : buf) out.emplace_back(s ? s : "");
    H5Dvlen_reclaim(mem.get(), space.get(), H5P_DEFAULT, buf.data());
  } else {
    std::vector<char> buf(n * size);
    read(buf.data());
    if (crc) *crc = crc32_of(buf.data(), buf.size());
    bool space_padded = H5Tget_strpad(type.get()) == H5T_STR_SPACEPAD;
    for (size_t i = 0; i < n; ++i) {
      std::string s(buf.data() + i * size, size);
      s.resize(std::min(s.size(), s.find('\0')));
      if (space_padded) s.erase(s.find_last_not_of(' ') + 1);
      out.push_back(std::move(s));
    }
  }
  return out;
}

// ---------------------------------------------------------------------------- string datasets

std::string H5File::read_string(const std::string& path) const {
  std::string p = norm_path(path);
  DatasetInfo i = info_checked(p, DType::kString);
  if (autograd::numel_of(i.shape) != 1)
    impl_->fail("dataset '" + p + "' holds " + std::to_string(autograd::numel_of(i.shape)) +
                " strings, expected one");
  return read_strings(p).at(0);
}

std::vector<std::string> H5File::read_strings(const std::string& path, Shape* shape) const {
  std::string p = norm_path(path);
  DatasetInfo i = info_checked(p, DType::kString);
  Handle ds(H5Dopen2(impl_->id(), p.c_str(), H5P_DEFAULT), H5Dclose);
  if (shape) *shape = i.shape;
  int64_t actual = crc32_of(nullptr, 0);  // what an empty list stores
  std::vector<std::string> values = read_string_values(*impl_, ds.get(), false, p, &actual);
  if (has_attr(p, kCrcAttr) && attr_i64(p, kCrcAttr) != actual)
    impl_->fail("dataset '" + p + "' fails its CRC-32 check; the file is damaged");
  return values;
}

void H5Writer::write_string(const std::string& path, const std::string& text) {
  write_strings(path, {text}, Shape{});
}

void H5Writer::write_strings(const std::string& path, const std::vector<std::string>& values) {
  write_strings(path, values, Shape{static_cast<int64_t>(values.size())});
}

void H5Writer::write_strings(const std::string& path, const std::vector<std::string>& values,
                             const Shape& shape) {
  std::string p = norm_path(path);
  check_count(p, static_cast<int64_t>(values.size()), shape);
  for (const std::string& v : values) check_no_nul(*impl_, v, "'" + p + "'");
  FixedStrings packed = pack_strings(values);
  Handle space = make_space(shape);
  Handle ds = create_dataset(*this, p, packed.type.get(), space.get(), H5P_DEFAULT);
  if (!values.empty() && H5Dwrite(ds.get(), packed.type.get(), H5S_ALL, H5S_ALL, H5P_DEFAULT,
                                  packed.bytes.data()) < 0)
    impl_->fail("cannot write dataset '" + p + "' (disk full?)");
  set_attr_i64(p, kCrcAttr, crc32_of(packed.bytes.data(), packed.bytes.size()));
}

// ---------------------------------------------------------------------------- attributes: read

bool H5File::has_attr(const std::string& object, const std::string& name) const {
  if (!exists(object)) return false;
  Handle obj = impl_->open_object(object);
  htri_t has = H5Aexists(obj.get(), name.c_str());
  if (has < 0) hdf5_detail();
  return has > 0;
}

std::vector<std::string> H5File::list_attrs(const std::string& object) const {
  Handle obj = impl_->open_object(object);
  std::vector<std::string> names;
  auto collect = [](hid_t, const char* name, const H5A_info_t*, void* out) -> herr_t {
    static_cast<std::vector<std::string>*>(out)->emplace_back(name);
    return 0;
  };
  hsize_t idx = 0;
  if (H5Aiterate2(obj.get(), H5_INDEX_NAME, H5_ITER_INC, &idx, collect, &names) < 0)
    impl_->fail("cannot list the attributes of '" + norm_path(object) + "'");
  std::sort(names.begin(), names.end());
  return names;
}

std::string H5File::attr_string(const std::string& object, const std::string& name) const {
  Attr a = open_attr(*impl_, object, name);
  check_scalar(*impl_, a, a.cls == H5T_STRING, "string");
  return read_string_values(*impl_, a.id.get(), true, a.what, nullptr).at(0);
}

int64_t H5File::attr_i64(const std::string& object, const std::string& name) const {
  Attr a = open_attr(*impl_, object, name);
  check_scalar(*impl_, a, a.cls == H5T_INTEGER, "integer");
  int64_t v = 0;
  read_attr(*impl_, a, H5T_NATIVE_INT64, &v);
  return v;
}

float H5File::attr_f32(const std::string& object, const std::string& name) const {
  Attr a = open_attr(*impl_, object, name);
  check_scalar(*impl_, a, a.cls == H5T_FLOAT && a.size == 4, "float32");
  float v = 0;
  read_attr(*impl_, a, H5T_NATIVE_FLOAT, &v);
  return v;
}

double H5File::attr_f64(const std::string& object, const std::string& name) const {
  Attr a = open_attr(*impl_, object, name);
  check_scalar(*impl_, a, a.cls == H5T_FLOAT && (a.size == 4 || a.size == 8), "float");
  double v = 0;
  read_attr(*impl_, a, H5T_NATIVE_DOUBLE, &v);  // float32 widens exactly
  return v;
}

std::vector<int64_t> H5File::attr_i64s(const std::string& object, const std::string& name) const {
  Attr a = open_attr(*impl_, object, name);
  if (a.cls != H5T_INTEGER) impl_->fail(a.what + " is not an integer array");
  std::vector<int64_t> v(static_cast<size_t>(a.count));
  if (!v.empty()) read_attr(*impl_, a, H5T_NATIVE_INT64, v.data());
  return v;
}

// ---------------------------------------------------------------------------- attributes: write

namespace {

// Replaces attribute `name` of `object` (created as a group when missing).
void put_attr(H5Writer& w, const std::string& object, const std::string& name, hid_t file_type,
              hid_t mem_type, const Shape& shape, const void* data) {
  const H5File::Impl& f = w.impl();
  std::string what = "attribute '" + name + "' of '" + norm_path(object) + "'";
  if (name.empty()) f.fail("cannot write an attribute with an empty name on '" + object + "'");
  if (!w.exists(object)) w.create_group(object);
  Handle obj = f.open_object(object);
  if (H5Aexists(obj.get(), name.c_str()) > 0 && H5Adelete(obj.get(), name.c_str()) < 0)
    f.fail("cannot replace " + what);
  Handle space = make_space(shape);
  Handle a(H5Acreate2(obj.get(), name.c_str(), file_type, space.get(), H5P_DEFAULT, H5P_DEFAULT),
           H5Aclose);
  if (!a.ok()) f.fail("cannot create " + what);
  if (autograd::numel_of(shape) > 0 && H5Awrite(a.get(), mem_type, data) < 0)
    f.fail("cannot write " + what);
}

}  // namespace

void H5Writer::set_attr_string(const std::string& object, const std::string& name,
                               const std::string& value) {
  check_no_nul(*impl_, value, "attribute '" + name + "' of '" + norm_path(object) + "'");
  FixedStrings packed = pack_strings({value});
  put_attr(*this, object, name, packed.type.get(), packed.type.get(), Shape{}, packed.bytes.data());
}

void H5Writer::set_attr_i64(const std::string& object, const std::string& name, int64_t value) {
  put_attr(*this, object, name, H5T_STD_I64LE, H5T_NATIVE_INT64, Shape{}, &value);
}

void H5Writer::set_attr_f32(const std::string& object, const std::string& name, float value) {
  put_attr(*this, object, name, H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, Shape{}, &value);
}

void H5Writer::set_attr_f64(const std::string& object, const std::string& name, double value) {
  put_attr(*this, object, name, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, Shape{}, &value);
}

void H5Writer::set_attr_i64s(const std::string& object, const std::string& name,
                             const std::vector<int64_t>& values) {
  put_attr(*this, object, name, H5T_STD_I64LE, H5T_NATIVE_INT64,
           Shape{static_cast<int64_t>(values.size())}, values.data());
}

}  // namespace mxqat::trainers
