// h5file: paths, groups and numeric datasets of an open file (opening, creating and committing
// files: h5file_open.cpp).
// Attributes and strings are in h5file_attr.cpp. Every HDF5 call is checked; failures become
// mxqat::Error naming the file and the object.
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <set>
#include <system_error>

#include <zlib.h>

#include "trainers/io/h5file_impl.h"
#include "trainers/util/files.h"
#include "trainers/io/integrity.h"

namespace mxqat::trainers {

namespace fs = std::filesystem;

// ---------------------------------------------------------------------------- helpers

std::string hdf5_detail() {
  std::string innermost;
  auto take_first = [](unsigned n, const H5E_error2_t* e, void* out) -> herr_t {
    if (n == 0 && e->desc) *static_cast<std::string*>(out) = e->desc;
    return 0;
  };
  H5Ewalk2(H5E_DEFAULT, H5E_WALK_UPWARD, take_first, &innermost);
  H5Eclear2(H5E_DEFAULT);
  return innermost.empty() ? "" : " (HDF5: " + innermost + ")";
}

void silence_hdf5() { H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr); }

const char* dtype_name(DType t) {
  switch (t) {
    case DType::kFloat32: return "float32";
    case DType::kFloat64: return "float64";
    case DType::kUInt8: return "uint8";
    case DType::kInt32: return "int32";
    case DType::kInt64: return "int64";
    case DType::kString: return "string";
  }
  return "?";
}

hid_t file_type_of(DType t) {
  switch (t) {
    case DType::kFloat32: return H5T_IEEE_F32LE;
    case DType::kFloat64: return H5T_IEEE_F64LE;
    case DType::kUInt8: return H5T_STD_U8LE;
    case DType::kInt32: return H5T_STD_I32LE;
    case DType::kInt64: return H5T_STD_I64LE;
    case DType::kString: break;
  }
  MXQAT_FAIL("no numeric HDF5 type for ", dtype_name(t));
}

hid_t mem_type_of(DType t) {
  switch (t) {
    case DType::kFloat32: return H5T_NATIVE_FLOAT;
    case DType::kFloat64: return H5T_NATIVE_DOUBLE;
    case DType::kUInt8: return H5T_NATIVE_UINT8;
    case DType::kInt32: return H5T_NATIVE_INT32;
    case DType::kInt64: return H5T_NATIVE_INT64;
    case DType::kString: break;
  }
  MXQAT_FAIL("no numeric HDF5 type for ", dtype_name(t));
}

DType classify_type(const H5File::Impl& f, hid_t type, const std::string& what) {
  H5T_class_t cls = H5Tget_class(type);
  size_t size = H5Tget_size(type);
  if (cls == H5T_STRING) return DType::kString;
  // Only the standard little-endian layouts (what every current writer produces): a damaged
  // type message (byte order, precision, bias) would otherwise convert into different numbers.
  for (DType t : {DType::kFloat32, DType::kFloat64, DType::kUInt8, DType::kInt32, DType::kInt64})
    if (H5Tequal(type, file_type_of(t)) > 0) return t;
  f.fail("'" + what + "' has an HDF5 type mxqat does not read (class " +
         std::to_string(static_cast<int>(cls)) + ", " + std::to_string(size) +
         " bytes); expected little-endian IEEE float32/float64, uint8, int32, int64 or a string");
}

Shape shape_of_space(const H5File::Impl& f, hid_t space, const std::string& what) {
  H5S_class_t cls = H5Sget_simple_extent_type(space);
  if (cls == H5S_SCALAR) return {};
  if (cls != H5S_SIMPLE) f.fail("'" + what + "' has no data (null dataspace)");
  int rank = H5Sget_simple_extent_ndims(space);
  if (rank < 0) f.fail("cannot read the shape of '" + what + "'");
  std::vector<hsize_t> dims(static_cast<size_t>(rank));
  H5Sget_simple_extent_dims(space, dims.data(), nullptr);
  int64_t numel = 1;  // a damaged header can claim any shape: refuse ones that overflow
  for (hsize_t d : dims)
    if (d > (hsize_t{1} << 62) || __builtin_mul_overflow(numel, static_cast<int64_t>(d), &numel))
      f.fail("'" + what + "' claims an impossible shape; the file is damaged");
  return Shape(dims.begin(), dims.end());
}

// Every chunk present (chunked layout), or the data allocated (contiguous, compact).
bool fully_allocated(hid_t dataset, const Shape& shape) {
  Handle dcpl(H5Dget_create_plist(dataset), H5Pclose);
  if (!dcpl.ok()) return false;
  if (H5Pget_layout(dcpl.get()) != H5D_CHUNKED) {
    H5D_space_status_t status;
    return H5Dget_space_status(dataset, &status) >= 0 && status == H5D_SPACE_STATUS_ALLOCATED;
  }
  std::vector<hsize_t> chunk(shape.size());
  if (H5Pget_chunk(dcpl.get(), static_cast<int>(chunk.size()), chunk.data()) !=
      static_cast<int>(chunk.size()))
    return false;
  hsize_t expected = 1, stored = 0;
  for (size_t d = 0; d < shape.size(); ++d) {
    if (chunk[d] == 0) return false;
    expected *= (static_cast<hsize_t>(shape[d]) + chunk[d] - 1) / chunk[d];
  }
  Handle space(H5Dget_space(dataset), H5Sclose);  // HDF5 1.10 refuses H5S_ALL here
  return space.ok() && H5Dget_num_chunks(dataset, space.get(), &stored) >= 0 &&
         stored == expected;
}

int64_t crc32_of(const void* data, size_t bytes) {
  static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "CRCs are of little-endian bytes");
  uLong crc = crc32(0L, Z_NULL, 0);
  const auto* p = static_cast<const Bytef*>(data);
  for (size_t done = 0; done < bytes;) {  // zlib takes uInt lengths
    uInt len = static_cast<uInt>(std::min<size_t>(bytes - done, size_t{1} << 30));
    crc = crc32(crc, p + done, len);
    done += len;
  }
  return static_cast<int64_t>(crc);
}

bool dataset_has_filters(hid_t dataset) {
  Handle dcpl(H5Dget_create_plist(dataset), H5Pclose);
  return dcpl.ok() && H5Pget_nfilters(dcpl.get()) != 0;
}

Handle make_space(const Shape& shape) {
  if (shape.empty()) return Handle(H5Screate(H5S_SCALAR), H5Sclose);
  MXQAT_CHECK(shape.size() <= H5S_MAX_RANK, "HDF5 datasets have at most ", H5S_MAX_RANK,
              " dimensions, got ", autograd::shape_str(shape));
  autograd::numel_of(shape);  // rejects negative dimensions
  std::vector<hsize_t> dims(shape.begin(), shape.end());
  return Handle(H5Screate_simple(static_cast<int>(dims.size()), dims.data(), nullptr), H5Sclose);
}

std::string norm_path(const std::string& path) {
  std::string p = path.empty() || path[0] != '/' ? "/" + path : path;
  while (p.size() > 1 && p.back() == '/') p.pop_back();
  return p;
}

std::string join_path(const std::string& group, const std::string& name) {
  std::string g = norm_path(group);
  return g == "/" ? "/" + name : g + "/" + name;
}

namespace {

Handle make_lcpl() {
  Handle lcpl(H5Pcreate(H5P_LINK_CREATE), H5Pclose);
  H5Pset_create_intermediate_group(lcpl.get(), 1);
  return lcpl;
}

// Names are used verbatim ('.' included); only '/' splits. Empty, "." and ".." parts are refused.
void check_new_path(const H5File::Impl& f, const std::string& p) {
  size_t start = 1;
  while (start <= p.size()) {
    size_t end = p.find('/', start);
    if (end == std::string::npos) end = p.size();
    std::string part = p.substr(start, end - start);
    if (part.empty() || part == "." || part == "..")
      f.fail("cannot create '" + p + "': empty, '.' or '..' path component");
    start = end + 1;
  }
}

}  // namespace

Handle create_dataset(const H5File& file, const std::string& path, hid_t type, hid_t space,
                      hid_t dcpl) {
  const H5File::Impl& f = file.impl();
  std::string p = norm_path(path);
  check_new_path(f, p);
  if (file.exists(p)) f.fail("cannot write '" + p + "': it already exists");
  for (size_t pos = p.find('/', 1); pos != std::string::npos; pos = p.find('/', pos + 1))
    if (file.is_dataset(p.substr(0, pos)))
      f.fail("cannot write '" + p + "': '" + p.substr(0, pos) + "' is a dataset, not a group");
  Handle lcpl = make_lcpl();
  Handle ds(H5Dcreate2(f.id(), p.c_str(), type, space, lcpl.get(), dcpl, H5P_DEFAULT), H5Dclose);
  if (!ds.ok()) f.fail("cannot create dataset '" + p + "'");
  return ds;
}

// ---------------------------------------------------------------------------- Impl

H5File::Impl::~Impl() {
  if (file >= 0) H5Fclose(file);
  if (fd >= 0) ::close(fd);
  if (writer && !temp.empty()) {
    std::error_code ec;
    fs::remove(temp, ec);
  }
}

hid_t H5File::Impl::id() const {
  MXQAT_CHECK(file >= 0, "HDF5 file '", path,
              "' is closed (a writer cannot be used after commit()); reopen it with H5Reader");
  return file;
}

void H5File::Impl::fail(const std::string& msg) const {
  std::string detail = hdf5_detail();
  MXQAT_FAIL("HDF5 file '", path, "': ", msg, detail);
}

Handle H5File::Impl::open_object(const std::string& p) const {
  hid_t f = id();
  std::string q = norm_path(p);
  if (q != "/" && H5Lexists(f, q.c_str(), H5P_DEFAULT) <= 0) {
    hdf5_detail();  // a missing parent is an error on the stack, not an answer
    fail("object '" + q + "' is missing");
  }
  Handle obj(H5Oopen(f, q.c_str(), H5P_DEFAULT), H5Oclose);
  if (!obj.ok()) fail("cannot open object '" + q + "'");
  return obj;
}

// ---------------------------------------------------------------------------- H5File

H5File::H5File(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
H5File::H5File(H5File&&) noexcept = default;
H5File& H5File::operator=(H5File&&) noexcept = default;
H5File::~H5File() = default;

const std::string& H5File::file_path() const { return impl_->path; }

bool H5File::exists(const std::string& path) const {
  hid_t f = impl_->id();
  std::string p = norm_path(path);
  // H5Lexists fails (rather than answering false) when a parent is missing: walk the prefixes.
  for (size_t pos = 1; pos != std::string::npos && p != "/";) {
    pos = p.find('/', pos + 1);
    std::string prefix = p.substr(0, pos);
    if (H5Lexists(f, prefix.c_str(), H5P_DEFAULT) <= 0 ||
        H5Oexists_by_name(f, prefix.c_str(), H5P_DEFAULT) <= 0) {
      H5Eclear2(H5E_DEFAULT);
      return false;
    }
  }
  return true;
}

bool H5File::is_group(const std::string& path) const {
  return exists(path) && H5Iget_type(impl_->open_object(path).get()) == H5I_GROUP;
}

bool H5File::is_dataset(const std::string& path) const {
  return exists(path) && H5Iget_type(impl_->open_object(path).get()) == H5I_DATASET;
}

std::vector<std::string> H5File::list(const std::string& group) const {
  std::string g = norm_path(group);
  if (!is_group(g)) impl_->fail("group '" + g + "' is missing (or is not a group)");
  Handle gid(H5Gopen2(impl_->id(), g.c_str(), H5P_DEFAULT), H5Gclose);
  H5G_info_t ginfo;
  if (!gid.ok() || H5Gget_info(gid.get(), &ginfo) < 0) impl_->fail("cannot list '" + g + "'");
  std::vector<std::string> names;
  for (hsize_t i = 0; i < ginfo.nlinks; ++i) {
    ssize_t n = H5Lget_name_by_idx(gid.get(), ".", H5_INDEX_NAME, H5_ITER_INC, i, nullptr, 0,
                                   H5P_DEFAULT);
    if (n < 0) impl_->fail("cannot list '" + g + "'");
    std::string name(static_cast<size_t>(n) + 1, '\0');
    H5Lget_name_by_idx(gid.get(), ".", H5_INDEX_NAME, H5_ITER_INC, i, name.data(), name.size(),
                       H5P_DEFAULT);
    name.resize(static_cast<size_t>(n));
    names.push_back(std::move(name));
  }
  std::sort(names.begin(), names.end());
  return names;
}

namespace {
// The file address of the object at `path`, which identifies it whatever link leads there.
haddr_t object_address(const H5File::Impl& f, const std::string& path) {
  H5O_info_t info;
  if (H5Oget_info_by_name2(f.id(), path.c_str(), &info, H5O_INFO_BASIC, H5P_DEFAULT) < 0)
    f.fail("cannot read the object header of '" + path + "'");
  return info.addr;
}
}  // namespace

std::vector<std::string> H5File::datasets_under(const std::string& group) const {
  // Each group is entered once: a hard link back to an ancestor (a loop) or a second link to
  // the same group would otherwise recurse forever or list data twice.
  std::vector<std::string> out;
  std::set<haddr_t> visited{object_address(*impl_, norm_path(group))};
  std::vector<std::pair<std::string, std::string>> pending{{norm_path(group), ""}};  // path, prefix
  while (!pending.empty()) {
    auto [g, prefix] = pending.back();
    pending.pop_back();
    for (const std::string& name : list(g)) {
      const std::string child = join_path(g, name);
      if (is_dataset(child)) {
        out.push_back(prefix + name);
      } else if (is_group(child)) {
        if (!visited.insert(object_address(*impl_, child)).second)
          impl_->fail("group '" + child + "' is reached a second time (a hard-link loop or an "
                      "alias of another group); the file is damaged or hostile: regenerate it");
        pending.emplace_back(child, prefix + name + "/");
      }
    }
  }
  std::sort(out.begin(), out.end());
  return out;
}

DatasetInfo H5File::info(const std::string& dataset) const {
  std::string p = norm_path(dataset);
  if (!exists(p)) impl_->fail("dataset '" + p + "' is missing");
  Handle ds(H5Dopen2(impl_->id(), p.c_str(), H5P_DEFAULT), H5Dclose);
  if (!ds.ok()) impl_->fail("'" + p + "' is not a dataset");
  Handle type(H5Dget_type(ds.get()), H5Tclose);
  Handle space(H5Dget_space(ds.get()), H5Sclose);
  if (!type.ok() || !space.ok()) impl_->fail("cannot read the type of '" + p + "'");
  DatasetInfo i{classify_type(*impl_, type.get(), p), shape_of_space(*impl_, space.get(), p)};
  // Unallocated data reads back as the fill value (zeros) without an error: a lost chunk index
  // would silently zero a tensor.
  if (autograd::numel_of(i.shape) > 0 && !fully_allocated(ds.get(), i.shape))
    impl_->fail("dataset '" + p + "' has data that was never written or was lost; the file is "
                "damaged");
  // A damaged header may claim more data than the file holds; catch that before allocating.
  if (i.dtype != DType::kString && !dataset_has_filters(ds.get())) {
    uint64_t need = static_cast<uint64_t>(autograd::numel_of(i.shape)) * H5Tget_size(type.get());
    uint64_t stored = H5Dget_storage_size(ds.get());
    if (stored < need)
      impl_->fail("dataset '" + p + "' has shape " + autograd::shape_str(i.shape) + " (" +
                  std::to_string(need) + " bytes) but the file stores " + std::to_string(stored) +
                  " bytes of it; the file is damaged (or the dataset was never written)");
  }
  return i;
}

DatasetInfo H5File::info_checked(const std::string& path, DType want) const {
  DatasetInfo i = info(path);
  if (i.dtype != want)
    impl_->fail("dataset '" + norm_path(path) + "' holds " + dtype_name(i.dtype) + " " +
                autograd::shape_str(i.shape) + " but " + dtype_name(want) + " was expected");
  return i;
}

void H5File::read_raw(const std::string& path, DType want, void* out,
                      const Shape& expected) const {
  std::string p = norm_path(path);
  DatasetInfo i = info_checked(p, want);
  if (i.shape != expected)
    impl_->fail("dataset '" + p + "' has shape " + autograd::shape_str(i.shape) + " but " +
                autograd::shape_str(expected) + " was expected");
  if (autograd::numel_of(i.shape) == 0) return;
  Handle ds(H5Dopen2(impl_->id(), p.c_str(), H5P_DEFAULT), H5Dclose);
  if (H5Dread(ds.get(), mem_type_of(want), H5S_ALL, H5S_ALL, H5P_DEFAULT, out) < 0)
    impl_->fail("cannot read dataset '" + p + "' (the file may be damaged)");
  if (!has_attr(p, kCrcAttr) && impl_->require_crc)
    impl_->fail("dataset '" + p + "' lacks its crc32 attribute (a missing checksum is an error, "
                "not a pass); the file is damaged or was edited: regenerate it");
  if (has_attr(p, kCrcAttr)) {
    int64_t stored = attr_i64(p, kCrcAttr);
    int64_t actual = crc32_of(out, static_cast<size_t>(autograd::numel_of(i.shape)) *
                                       H5Tget_size(mem_type_of(want)));
    if (stored != actual)
      impl_->fail("dataset '" + p + "' fails its CRC-32 check (stored " + std::to_string(stored) +
                  ", computed " + std::to_string(actual) + "); the file is damaged");
  }
}

autograd::Tensor H5File::read_tensor(const std::string& path) const {
  Shape s = info_checked(path, DType::kFloat32).shape;
  if (s.size() > 4)
    impl_->fail("dataset '" + norm_path(path) + "' has shape " + autograd::shape_str(s) +
                "; tensors have at most 4 dimensions");
  return read_tensor(path, s);
}

autograd::Tensor H5File::read_tensor(const std::string& path, const Shape& expected) const {
  autograd::Tensor t(expected);
  read_raw(path, DType::kFloat32, t.data(), expected);
  return t;
}

void H5Writer::create_group(const std::string& path) {
  std::string p = norm_path(path);
  if (p == "/" || is_group(p)) return;
  check_new_path(*impl_, p);
  if (exists(p)) impl_->fail("cannot create group '" + p + "': a dataset has that name");
  Handle lcpl = make_lcpl();
  Handle g(H5Gcreate2(impl_->id(), p.c_str(), lcpl.get(), H5P_DEFAULT, H5P_DEFAULT), H5Gclose);
  if (!g.ok()) impl_->fail("cannot create group '" + p + "' (is a parent a dataset?)");
}

void H5Writer::check_count(const std::string& path, int64_t count, const Shape& shape) const {
  if (count != autograd::numel_of(shape))
    impl_->fail("cannot write '" + norm_path(path) + "': shape " + autograd::shape_str(shape) +
                " needs " + std::to_string(autograd::numel_of(shape)) + " values, got " +
                std::to_string(count));
}

void H5Writer::write_tensor(const std::string& path, const autograd::Tensor& t,
                            const WriteOptions& opts) {
  write_raw(path, DType::kFloat32, t.data(), t.shape(), opts);
}

namespace {
// Chunks of at most ~1 MiB: halve the largest dimension until the chunk fits.
std::vector<hsize_t> chunk_dims(const Shape& shape, size_t elem_bytes) {
  std::vector<hsize_t> c(shape.begin(), shape.end());
  auto bytes = [&] {
    hsize_t b = elem_bytes;
    for (hsize_t d : c) b *= d;
    return b;
  };
  while (bytes() > (hsize_t{1} << 20)) {
    auto largest = std::max_element(c.begin(), c.end());
    *largest = (*largest + 1) / 2;
  }
  return c;
}
}  // namespace

void H5Writer::write_raw(const std::string& path, DType dtype, const void* data,
                         const Shape& shape, const WriteOptions& opts) {
  std::string p = norm_path(path);
  Handle space = make_space(shape);
  int64_t n = autograd::numel_of(shape);
  if (n > 0 && data == nullptr) impl_->fail("cannot write '" + p + "': no data (null pointer)");
  Handle dcpl(H5Pcreate(H5P_DATASET_CREATE), H5Pclose);
  if (opts.compress && !shape.empty() && n > 0) {
    MXQAT_CHECK(opts.gzip_level >= 1 && opts.gzip_level <= 9, "gzip level must be 1..9, got ",
                opts.gzip_level);
    if (H5Zfilter_avail(H5Z_FILTER_DEFLATE) <= 0)
      impl_->fail("this HDF5 library has no gzip filter; write '" + p + "' uncompressed");
    std::vector<hsize_t> chunk = chunk_dims(shape, H5Tget_size(file_type_of(dtype)));
    if (H5Pset_chunk(dcpl.get(), static_cast<int>(chunk.size()), chunk.data()) < 0 ||
        H5Pset_shuffle(dcpl.get()) < 0 ||
        H5Pset_deflate(dcpl.get(), static_cast<unsigned>(opts.gzip_level)) < 0)
      impl_->fail("cannot set up compression for '" + p + "'");
  }
  Handle ds = create_dataset(*this, p, file_type_of(dtype), space.get(), dcpl.get());
  if (n > 0 && H5Dwrite(ds.get(), mem_type_of(dtype), H5S_ALL, H5S_ALL, H5P_DEFAULT, data) < 0)
    impl_->fail("cannot write dataset '" + p + "' (disk full?)");
  if (opts.checksum)
    set_attr_i64(p, kCrcAttr, crc32_of(data, static_cast<size_t>(n) * H5Tget_size(file_type_of(dtype))));
}

int64_t hdf5_open_objects() {
  const ssize_t n = H5Fget_obj_count(static_cast<hid_t>(H5F_OBJ_ALL), H5F_OBJ_ALL);
  MXQAT_CHECK(n >= 0, "HDF5 could not count its open objects", hdf5_detail());
  return static_cast<int64_t>(n);
}

}  // namespace mxqat::trainers
