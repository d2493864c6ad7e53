// A small RAII layer over the HDF5 C API: typed datasets and attributes by path, atomic writes
// (temporary file + rename), dtype/shape-checked reads, every failure as an mxqat::Error.
// The only place HDF5 is included is h5file.cpp (STYLE.md §1); checkpoints (ckpt.h) and exports
// build on this. Not a general HDF5 binding: no hyperslabs, no compound types, no SWMR.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "autograd/tensor.h"

namespace mxqat::trainers {

using autograd::Shape;

// Element types a dataset may hold. Files store little-endian IEEE floats / two's-complement ints;
// strings are variable-length UTF-8 (fixed-length strings written by other tools are read too).
enum class DType { kFloat32, kFloat64, kUInt8, kInt32, kInt64, kString };
const char* dtype_name(DType t);  // "float32", "uint8", ...

template <class T>
constexpr DType dtype_of();
template <> constexpr DType dtype_of<float>() { return DType::kFloat32; }
template <> constexpr DType dtype_of<double>() { return DType::kFloat64; }
template <> constexpr DType dtype_of<uint8_t>() { return DType::kUInt8; }
template <> constexpr DType dtype_of<int32_t>() { return DType::kInt32; }
template <> constexpr DType dtype_of<int64_t>() { return DType::kInt64; }

struct DatasetInfo {
  DType dtype;
  Shape shape;  // {} for a scalar dataset
};

struct WriteOptions {
  bool compress = false;  // chunked + shuffle + gzip (lossless); ignored for scalar/empty data
  int gzip_level = 4;     // 1 (fast) .. 9 (small)
  bool checksum = false;  // store attribute "crc32" (CRC-32 of the little-endian data bytes);
                          // every read verifies it, so damaged data throws instead of
                          // returning wrong numbers (HDF5's own Fletcher-32 passes all-zero data)
};

// What both a reader and a writer can do: look around and read. Paths are absolute or relative
// to the root ("/params/fc1.weight" == "params/fc1.weight"); '/' separates groups, any other
// character (including '.') is part of a name. Errors name the object and the file.
class H5File {
 public:
  H5File(H5File&&) noexcept;
  H5File& operator=(H5File&&) noexcept;
  virtual ~H5File();

  const std::string& file_path() const;  // the path the user named (the final path for a writer)
  struct Impl;  // opaque here; defined in h5file_impl.h
  const Impl& impl() const { return *impl_; }

  bool exists(const std::string& path) const;  // any object; false if a parent is missing
  bool is_group(const std::string& path) const;
  bool is_dataset(const std::string& path) const;
  std::vector<std::string> list(const std::string& group) const;            // children, sorted
  std::vector<std::string> datasets_under(const std::string& group) const;  // relative paths, sorted
  DatasetInfo info(const std::string& dataset) const;

  // Reads check the stored dtype (and for *_expect / read_into, the shape) and throw on mismatch;
  // a dataset with a "crc32" attribute (WriteOptions::checksum) is verified after reading.
  template <class T>
  std::vector<T> read(const std::string& path, Shape* shape = nullptr) const {
    Shape s = info_checked(path, dtype_of<T>()).shape;
    std::vector<T> out(static_cast<size_t>(autograd::numel_of(s)));
    read_raw(path, dtype_of<T>(), out.data(), s);
    if (shape) *shape = s;
    return out;
  }
  template <class T>
  std::vector<T> read_expect(const std::string& path, const Shape& expected) const {
    std::vector<T> out(static_cast<size_t>(autograd::numel_of(expected)));
    read_raw(path, dtype_of<T>(), out.data(), expected);
    return out;
  }
  template <class T>
  void read_into(const std::string& path, T* out, const Shape& expected) const {
    read_raw(path, dtype_of<T>(), out, expected);
  }
  autograd::Tensor read_tensor(const std::string& path) const;  // float32, at most 4-D
  autograd::Tensor read_tensor(const std::string& path, const Shape& expected) const;
  std::string read_string(const std::string& path) const;  // scalar string dataset
  std::vector<std::string> read_strings(const std::string& path, Shape* shape = nullptr) const;

  // Attributes on a group or dataset ("/" is the root).
  bool has_attr(const std::string& object, const std::string& name) const;
  std::vector<std::string> list_attrs(const std::string& object) const;  // sorted
  std::string attr_string(const std::string& object, const std::string& name) const;
  int64_t attr_i64(const std::string& object, const std::string& name) const;  // any int type
  float attr_f32(const std::string& object, const std::string& name) const;    // float32 only
  double attr_f64(const std::string& object, const std::string& name) const;   // float32/64
  std::vector<int64_t> attr_i64s(const std::string& object, const std::string& name) const;

 protected:
  explicit H5File(std::unique_ptr<Impl> impl);
  DatasetInfo info_checked(const std::string& path, DType want) const;
  void read_raw(const std::string& path, DType want, void* out, const Shape& expected) const;
  std::unique_ptr<Impl> impl_;
};

class H5Reader : public H5File {
 public:
  // Throws if the file is missing, not a regular file, lacks mxqat's integrity block (see
  // io/integrity.h: written by another program or an mxqat from before the blocks), is
  // truncated or damaged (whole-file SHA-256), or HDF5 cannot open it. No byte of a file that
  // fails the check reaches HDF5.
  static H5Reader open(const std::string& path);
  // Any HDF5 file, unchecked: only for foreign inputs, and only inside run_isolated (a child
  // process), because HDF5 may crash on a damaged file.
  static H5Reader open_unsealed(const std::string& path);
  static bool is_sealed(const std::string& path);  // starts with mxqat's magic (not yet verified)
  // From now on open() accepts files without the block in this process, unchecked: only for
  // `mxqat seal`, inside run_isolated (a child process that may crash on a damaged file).
  static void accept_unsealed_in_this_process();
  // From now on a dataset without a "crc32" attribute is an error (files whose writer always
  // stores one: checkpoints).
  void require_checksums();

 private:
  using H5File::H5File;
};

// Builds the file in memory (nothing touches the disk before commit); commit() fills the
// 512-byte user block with the integrity block, writes the image to a new temporary
// "<final_path>.mxqat-tmp-<random>" (created with O_EXCL, so never through a planted link),
// fsyncs it and renames it onto final_path (replacing a link there, never following it).
// Destroyed without commit (an exception mid-write), it leaves nothing behind and never touches
// an existing file.
class H5Writer : public H5File {
 public:
  static H5Writer create(const std::string& final_path);
  void commit();  // after it, the writer is closed: any further call throws

  void create_group(const std::string& path);  // with intermediate groups; no-op if it exists

  // Datasets are created with their intermediate groups; writing an existing path throws.
  template <class T>
  void write(const std::string& path, const T* data, const Shape& shape,
             const WriteOptions& opts = {}) {
    write_raw(path, dtype_of<T>(), data, shape, opts);
  }
  template <class T>
  void write(const std::string& path, const std::vector<T>& data, const Shape& shape,
             const WriteOptions& opts = {}) {
    check_count(path, static_cast<int64_t>(data.size()), shape);
    write_raw(path, dtype_of<T>(), data.data(), shape, opts);
  }
  void write_tensor(const std::string& path, const autograd::Tensor& t,
                    const WriteOptions& opts = {});
  void write_string(const std::string& path, const std::string& text);  // scalar dataset
  // A 1-D list or an N-D table of strings (row-major); shape defaults to {values.size()}.
  // Stored fixed-length, NUL-padded UTF-8, with a "crc32" attribute checked on reading.
  void write_strings(const std::string& path, const std::vector<std::string>& values,
                     const Shape& shape);
  void write_strings(const std::string& path, const std::vector<std::string>& values);

  // Attributes: the object is created as a group if missing; an existing attribute is replaced.
  void set_attr_string(const std::string& object, const std::string& name,
                       const std::string& value);
  void set_attr_i64(const std::string& object, const std::string& name, int64_t value);
  void set_attr_f32(const std::string& object, const std::string& name, float value);
  void set_attr_f64(const std::string& object, const std::string& name, double value);
  void set_attr_i64s(const std::string& object, const std::string& name,
                     const std::vector<int64_t>& values);

 private:
  using H5File::H5File;
  void write_raw(const std::string& path, DType dtype, const void* data, const Shape& shape,
                 const WriteOptions& opts);
  void check_count(const std::string& path, int64_t count, const Shape& shape) const;
};

// HDF5 objects (files, groups, datasets, attributes, types) open in this process, through any
// H5File or not: 0 whenever no H5File is alive. The fuzz targets check it after every input, so a
// handle that an error path leaves open is a finding (LeakSanitizer cannot see one: HDF5 frees
// every open object at exit).
int64_t hdf5_open_objects();

}  // namespace mxqat::trainers
