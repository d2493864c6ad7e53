// The integrity block of every HDF5 file mxqat writes (checkpoints, exports, quantize outputs):
// the file's first 512 bytes, an HDF5 user block that HDF5 tools and h5py skip, hold a magic, a
// format version, the file length and the SHA-256 of every byte after the block. It is filled in
// after HDF5 closes the file and checked with plain POSIX reads before HDF5 parses anything, so a
// truncated or damaged file never reaches the HDF5 library (which does not survive all damage).
// Used by ckpt_h5 (H5Reader / H5Writer) only; no HDF5 here.
#pragma once
#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>

namespace mxqat::trainers {

inline constexpr size_t kSealBytes = 512;  // HDF5 user block: a power of two >= 512
inline constexpr uint32_t kSealVersion = 1;

// Writes the integrity block into `path`, an HDF5 file created with a kSealBytes user block and
// already closed by HDF5. `fd` (open read-write on it) is used, not reopened; not closed here.
void seal_file(int fd, const std::string& path);
// The same for a path (tests and tools that edit a file on purpose); does not follow a link.
void seal_file(const std::string& path);
// The same for a whole file image in memory (H5Writer: HDF5's core driver); `what` names it.
void seal_image(std::string& image, const std::string& what);

// What the first bytes of a file say.
enum class SealKind {
  kSealed,     // our magic: the block is there (validity checked by open_sealed)
  kPlainHdf5,  // an HDF5 signature at offset 0: an HDF5 file without our block
  kOther,      // neither (another format, or damaged beyond recognition)
};
SealKind seal_kind(int fd);

// Opens `path` read-only (a regular file, links allowed), checks the integrity block against the
// whole file and returns the open descriptor, positioned anywhere. Throws mxqat::Error naming
// the file and what is wrong: missing, not a regular file, too short, not written by mxqat,
// written by an older mxqat (no block), a newer block version, truncated, extended, damaged.
int open_sealed(const std::string& path);

// Runs `work` in a child process and returns the bytes it returns. A child that throws becomes
// an mxqat::Error with the child's message; one killed by a signal (a crash inside a library
// given a hostile file) or running past `timeout_s` becomes an mxqat::Error saying so about
// `what`. For parsing files that carry no integrity block (foreign HDF5 inputs).
std::string run_isolated(const std::string& what, int timeout_s,
                         const std::function<std::string()>& work);

}  // namespace mxqat::trainers
