// h5file_open: the files themselves. H5Reader::open checks the integrity block (io/integrity.h)
// before HDF5 parses a byte; H5Writer builds the whole file in memory (HDF5's core driver), then
// commit() seals the image and writes it with plain POSIX calls to an unpredictable temporary
// in the target directory, fsyncs and renames it into place. Groups, datasets and attributes are
// in h5file.cpp and h5file_attr.cpp.
#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <system_error>

#include "trainers/io/h5file_impl.h"
#include "trainers/io/integrity.h"
#include "trainers/util/files.h"

namespace mxqat::trainers {

namespace fs = std::filesystem;

namespace {

Handle make_fapl() {
  Handle fapl(H5Pcreate(H5P_FILE_ACCESS), H5Pclose);
  // Closing the file closes everything in it, so commit() really finishes the file.
  H5Pset_fclose_degree(fapl.get(), H5F_CLOSE_STRONG);
#if H5_VERSION_GE(1, 10, 7)
  // Lock where the filesystem can; carry on where it cannot (some network filesystems).
  H5Pset_file_locking(fapl.get(), true, true);
#endif
  return fapl;
}

// Makes a rename durable. Best effort: the file is already in place, so failing here (some
// filesystems refuse to fsync a directory) must not report the write as failed.
void fsync_dir_quietly(const std::string& dir) {
  int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY);
  if (fd < 0) return;
  ::fsync(fd);
  ::close(fd);
}

}  // namespace

// ---------------------------------------------------------------------------- H5Reader

namespace {
// Opens `impl->path` through HDF5: by `via` (the checked descriptor's /proc path) or the path.
void open_hdf5(H5File::Impl& impl, const std::string& via) {
  Handle fapl = make_fapl();
  impl.file = H5Fopen(via.c_str(), H5F_ACC_RDONLY, fapl.get());
  if (impl.file < 0)
    impl.fail("damaged or truncated HDF5 file, it cannot be opened; regenerate it by re-running "
              "the step that wrote it");
}
}  // namespace

namespace {
bool g_accept_unsealed = false;  // set only in `mxqat seal`'s child process
}  // namespace

void H5Reader::accept_unsealed_in_this_process() { g_accept_unsealed = true; }

H5Reader H5Reader::open(const std::string& path) {
  if (g_accept_unsealed && !is_sealed(path)) return open_unsealed(path);
  silence_hdf5();
  auto impl = std::make_unique<Impl>();
  impl->path = path;
  // The integrity block is checked before HDF5 sees a byte; HDF5 then opens the checked inode
  // itself (the descriptor's /proc entry), so a file swapped in meanwhile is never parsed.
  impl->fd = open_sealed(path);
  const std::string proc = "/proc/self/fd/" + std::to_string(impl->fd);
  open_hdf5(*impl, ::access(proc.c_str(), R_OK) == 0 ? proc : path);
  return H5Reader(std::move(impl));
}

H5Reader H5Reader::open_unsealed(const std::string& path) {
  silence_hdf5();
  auto impl = std::make_unique<Impl>();
  impl->path = path;
  regular_file_size(path, "HDF5 file");
  htri_t is_h5 = H5Fis_hdf5(path.c_str());
  if (is_h5 < 0) impl->fail("cannot read the file; check that it is readable");
  if (is_h5 == 0)
    impl->fail("not an HDF5 file (no HDF5 signature); it is damaged or of another format");
  open_hdf5(*impl, path);
  return H5Reader(std::move(impl));
}

void H5Reader::require_checksums() { impl_->require_crc = true; }

bool H5Reader::is_sealed(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) return false;
  const bool sealed = seal_kind(fd) == SealKind::kSealed;
  ::close(fd);
  return sealed;
}

// ---------------------------------------------------------------------------- H5Writer

namespace {
// Bob Jenkins' lookup3 hashlittle (public domain), byte by byte: HDF5's metadata checksum.
inline uint32_t lookup3(const unsigned char* k, size_t length) {
  auto rot = [](uint32_t x, int n) { return (x << n) | (x >> (32 - n)); };
  uint32_t a, b, c;
  a = b = c = 0xdeadbeef + static_cast<uint32_t>(length);
  for (; length > 12; length -= 12, k += 12) {
    a += k[0] + (uint32_t(k[1]) << 8) + (uint32_t(k[2]) << 16) + (uint32_t(k[3]) << 24);
    b += k[4] + (uint32_t(k[5]) << 8) + (uint32_t(k[6]) << 16) + (uint32_t(k[7]) << 24);
    c += k[8] + (uint32_t(k[9]) << 8) + (uint32_t(k[10]) << 16) + (uint32_t(k[11]) << 24);
    a -= c; a ^= rot(c, 4); c += b;
    b -= a; b ^= rot(a, 6); a += c;
    c -= b; c ^= rot(b, 8); b += a;
    a -= c; a ^= rot(c, 16); c += b;
    b -= a; b ^= rot(a, 19); a += c;
    c -= b; c ^= rot(b, 4); b += a;
  }
  if (length == 0) return c;
  uint32_t w[3] = {0, 0, 0};
  for (size_t i = 0; i < length; ++i) w[i / 4] += uint32_t(k[i]) << (8 * (i % 4));
  a += w[0], b += w[1], c += w[2];
  c ^= b; c -= rot(b, 14);
  a ^= c; a -= rot(c, 11);
  b ^= a; b -= rot(a, 25);
  c ^= b; c -= rot(b, 16);
  a ^= c; a -= rot(c, 4);
  b ^= a; b -= rot(a, 14);
  c ^= b; c -= rot(b, 24);
  return c;
}

// HDF5 1.10's H5Fget_file_image clears the superblock's "open for writing" flag in the image
// without updating the superblock's checksum (v2 superblock: 44 bytes, then a lookup3
// checksum), so the image would not open. Recompute it; anything else is left alone.
void fix_superblock_checksum(std::string& image, size_t at, const std::string& path) {
  auto* sb = reinterpret_cast<unsigned char*>(image.data()) + at;
  MXQAT_CHECK(image.size() >= at + 48 && sb[8] == 2, "cannot write '", path, "': unexpected HDF5 "
              "superblock version ", image.size() >= at + 9 ? int(sb[8]) : -1, " in the image");
  const uint32_t sum = lookup3(sb, 44);
  for (int i = 0; i < 4; ++i) sb[44 + i] = static_cast<unsigned char>(sum >> (8 * i));
}
}  // namespace

H5Writer H5Writer::create(const std::string& final_path) {
  silence_hdf5();
  MXQAT_CHECK(!final_path.empty(), "cannot write an HDF5 file to an empty path");
  fs::path parent = fs::path(final_path).parent_path();
  std::error_code ec;
  MXQAT_CHECK(parent.empty() || fs::is_directory(parent, ec), "cannot write '", final_path,
              "': directory '", parent.string(), "' does not exist; create it or choose another "
              "output directory");
  MXQAT_CHECK(!fs::is_directory(final_path, ec), "cannot write '", final_path,
              "': it is a directory");
  auto impl = std::make_unique<Impl>();
  impl->path = final_path;
  impl->writer = true;
  // HDF5 builds the file in memory (the core driver, no backing store); commit() writes the
  // image with plain POSIX calls. So HDF5 never does file I/O when writing: a full disk is one
  // failed write() of ours, never a half-closed HDF5 file (which crashes at exit).
  Handle fapl = make_fapl();
  if (H5Pset_fapl_core(fapl.get(), size_t{1} << 20, 0) < 0)
    impl->fail("cannot select HDF5's in-memory driver");
  // The 1.8 file format: checksummed superblock, object headers and indexes, so damaged
  // metadata is an error rather than undefined behaviour in HDF5; h5py/h5dump >= 1.8 read it.
  if (H5Pset_libver_bounds(fapl.get(), H5F_LIBVER_V18, H5F_LIBVER_V18) < 0)
    impl->fail("cannot select the HDF5 1.8 file format");
  // The user block that commit() fills with the integrity block (io/integrity.h).
  Handle fcpl(H5Pcreate(H5P_FILE_CREATE), H5Pclose);
  if (H5Pset_userblock(fcpl.get(), kSealBytes) < 0) impl->fail("cannot reserve the user block");
  impl->file = H5Fcreate(final_path.c_str(), H5F_ACC_TRUNC, fcpl.get(), fapl.get());
  if (impl->file < 0) impl->fail("cannot create the file in memory");
  return H5Writer(std::move(impl));
}

void H5Writer::commit() {
  hid_t f = impl_->id();
  if (H5Fflush(f, H5F_SCOPE_GLOBAL) < 0) impl_->fail("cannot finish the file in memory");
  // The image starts at the superblock (HDF5 leaves the user block out of it); the file on disk
  // is the integrity block followed by the image, as the superblock's base address (512) says.
  const ssize_t size = H5Fget_file_image(f, nullptr, 0);
  if (size < 48) impl_->fail("cannot get the file's image");
  std::string image(kSealBytes + static_cast<size_t>(size), '\0');
  if (H5Fget_file_image(f, image.data() + kSealBytes, static_cast<size_t>(size)) != size)
    impl_->fail("cannot get the file's image");
  herr_t rc = H5Fclose(f);
  impl_->file = -1;
  if (rc < 0) impl_->fail("cannot close the file in memory");
  fix_superblock_checksum(image, kSealBytes, impl_->path);
  seal_image(image, impl_->path);
  // A new temporary (O_EXCL, unpredictable name) in the target directory, then a rename,
  // which replaces a link at the final name instead of following it.
  const int fd = create_temp_file(impl_->path, &impl_->temp);
  std::string error;
  for (size_t done = 0; done < image.size() && error.empty();) {
    ssize_t w = ::write(fd, image.data() + done, image.size() - done);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) error = std::strerror(w < 0 ? errno : ENOSPC);
    else done += static_cast<size_t>(w);
  }
  if (error.empty() && ::fsync(fd) != 0) error = std::strerror(errno);
  if (::close(fd) != 0 && error.empty()) error = std::strerror(errno);
  MXQAT_CHECK(error.empty(), "cannot write '", impl_->path, "' (", image.size(), " bytes): ",
              error, "; check that the disk has space (disk full?) and the directory is writable");
  std::error_code ec;
  fs::rename(impl_->temp, impl_->path, ec);
  MXQAT_CHECK(!ec, "cannot rename '", impl_->temp, "' to '", impl_->path, "': ", ec.message());
  impl_->temp.clear();  // it is the final file now: nothing to remove
  fs::path parent = fs::path(impl_->path).parent_path();
  fsync_dir_quietly(parent.empty() ? "." : parent.string());
}

}  // namespace mxqat::trainers
