// Internals shared by h5file.cpp (files, groups, datasets) and h5file_attr.cpp (attributes,
// strings): RAII handles, the error helper, type tables. Includes hdf5.h, so only trainers/io/h5file*
// may include it (STYLE.md §1).
#pragma once
#include <hdf5.h>

#include <string>
#include <type_traits>
#include <vector>

#include "trainers/io/h5file.h"

static_assert(std::is_same_v<hid_t, int64_t>, "h5file assumes HDF5 >= 1.10 (64-bit hid_t)");

namespace mxqat::trainers {

// Owns one HDF5 id and closes it with the matching H5?close.
class Handle {
 public:
  using Closer = herr_t (*)(hid_t);
  Handle(hid_t id, Closer close) : id_(id), close_(close) {}
  Handle(Handle&& o) noexcept : id_(o.id_), close_(o.close_) { o.id_ = -1; }
  Handle(const Handle&) = delete;
  Handle& operator=(const Handle&) = delete;
  Handle& operator=(Handle&&) = delete;
  ~Handle() {
    if (id_ >= 0) close_(id_);
  }
  hid_t get() const { return id_; }
  bool ok() const { return id_ >= 0; }

 private:
  hid_t id_;
  Closer close_;
};

// The innermost description on HDF5's error stack as " (HDF5: ...)", or "" if empty; clears it.
std::string hdf5_detail();
// Turn off HDF5's printing of its error stack to stderr; we report through mxqat::Error.
void silence_hdf5();

struct H5File::Impl {
  std::string path;  // as the user named it (the final path for a writer)
  std::string temp;  // writer: the temporary file, removed unless committed
  hid_t file = -1;
  bool writer = false;

  ~Impl();
  hid_t id() const;  // throws once closed (after commit)
  // "HDF5 file 'PATH': " + msg + HDF5's own detail
  [[noreturn]] void fail(const std::string& msg) const;
  Handle open_object(const std::string& path) const;  // group or dataset; throws if missing
};

std::string norm_path(const std::string& path);  // "a/b/" -> "/a/b", "" -> "/"
std::string join_path(const std::string& group, const std::string& name);
hid_t file_type_of(DType t);  // little-endian storage type
hid_t mem_type_of(DType t);   // native type
// Dtype of a stored HDF5 type; throws naming `what` for types we do not read.
DType classify_type(const H5File::Impl& f, hid_t type, const std::string& what);
// {} for a scalar dataspace; throws for a null dataspace.
Shape shape_of_space(const H5File::Impl& f, hid_t space, const std::string& what);
Handle make_space(const Shape& shape);
bool dataset_has_filters(hid_t dataset);  // compressed: stored bytes may be fewer than logical
// CRC-32 (zlib) of the data's bytes, as stored in a dataset's kCrcAttr attribute.
int64_t crc32_of(const void* data, size_t bytes);
inline constexpr const char* kCrcAttr = "crc32";
// Creates dataset `path` (normalised) with its intermediate groups, after checking that the path
// is new, has no empty/'.'/'..' part and no dataset on the way.
Handle create_dataset(const H5File& file, const std::string& path, hid_t type, hid_t space,
                      hid_t dcpl);

// Strings (variable or fixed length) from an open dataset or attribute. For fixed-length strings
// *crc (if given) receives the CRC-32 of the stored bytes; it is left alone otherwise.
std::vector<std::string> read_string_values(const H5File::Impl& f, hid_t obj, bool is_attr,
                                            const std::string& what, int64_t* crc);

}  // namespace mxqat::trainers
