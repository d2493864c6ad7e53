// The integrity block (integrity.h): layout, sealing after HDF5 closes a file, the check before
// HDF5 opens one, and the child process that parses files without a block.
//
// Block layout (little-endian), bytes 0..511 of the file:
//   0   8  magic "MXQATH5\n"
//   8   4  block version (1)
//   12  4  block size (512)
//   16  8  file length in bytes, block included
//   24 32  SHA-256 of bytes [512, length)
//   56  .. a human-readable line (what the block is), then zeros
#include "trainers/io/integrity.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <vector>

#include "autograd/error.h"
#include "trainers/util/sha256.h"

namespace mxqat::trainers {

namespace {

constexpr char kMagic[8] = {'M', 'X', 'Q', 'A', 'T', 'H', '5', '\n'};
constexpr unsigned char kHdf5Signature[8] = {0x89, 'H', 'D', 'F', '\r', '\n', 0x1a, '\n'};
constexpr const char* kRegenerate =
    "; regenerate it with the mxqat command that wrote it (train, qat, export or quantize)";

void put_u32(unsigned char* p, uint32_t v) {
  for (int i = 0; i < 4; ++i) p[i] = static_cast<unsigned char>(v >> (8 * i));
}
void put_u64(unsigned char* p, uint64_t v) {
  for (int i = 0; i < 8; ++i) p[i] = static_cast<unsigned char>(v >> (8 * i));
}
uint32_t get_u32(const unsigned char* p) {
  uint32_t v = 0;
  for (int i = 3; i >= 0; --i) v = v << 8 | p[i];
  return v;
}
uint64_t get_u64(const unsigned char* p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = v << 8 | p[i];
  return v;
}

// Reads exactly `n` bytes at `offset`; returns the count actually read (short at end of file).
size_t read_at(int fd, void* buf, size_t n, uint64_t offset, const std::string& path) {
  size_t done = 0;
  while (done < n) {
    ssize_t r = ::pread(fd, static_cast<char*>(buf) + done, n - done,
                        static_cast<off_t>(offset + done));
    if (r < 0 && errno == EINTR) continue;
    MXQAT_CHECK(r >= 0, "cannot read '", path, "': ", std::strerror(errno));
    if (r == 0) break;
    done += static_cast<size_t>(r);
  }
  return done;
}

// SHA-256 of bytes [kSealBytes, end) and the number of bytes hashed (stops at `limit`).
std::pair<std::string, uint64_t> hash_payload(int fd, const std::string& path, uint64_t limit) {
  Sha256 h;
  uint64_t pos = kSealBytes;
  // At most 1 MiB at a time; no more than the file holds (a small file zeroes no 1 MiB buffer).
  std::vector<unsigned char> buf(static_cast<size_t>(std::min<uint64_t>(
      uint64_t{1} << 20, limit > pos ? limit - pos : 1)));
  while (pos < limit) {
    size_t want = static_cast<size_t>(std::min<uint64_t>(buf.size(), limit - pos));
    size_t got = read_at(fd, buf.data(), want, pos, path);
    h.update(buf.data(), got);
    pos += got;
    if (got < want) break;
  }
  return {h.hex(), pos};
}

std::string hex_of(const unsigned char* p, size_t n) {
  static const char* d = "0123456789abcdef";
  std::string s;
  for (size_t i = 0; i < n; ++i) s += d[p[i] >> 4], s += d[p[i] & 15];
  return s;
}

// The block for a file of `length` bytes whose bytes after the block hash to `sha256_hex`.
void make_block(uint64_t length, const std::string& sha256_hex, unsigned char* block) {
  std::memset(block, 0, kSealBytes);
  std::memcpy(block, kMagic, 8);
  put_u32(block + 8, kSealVersion);
  put_u32(block + 12, static_cast<uint32_t>(kSealBytes));
  put_u64(block + 16, length);
  auto val = [](char c) { return c <= '9' ? c - '0' : c - 'a' + 10; };
  for (size_t i = 0; i < 32; ++i)
    block[24 + i] = static_cast<unsigned char>(val(sha256_hex[2 * i]) << 4 | val(sha256_hex[2 * i + 1]));
  static const std::string note = "mxqat integrity block v1: file length and SHA-256 of bytes "
                                  "512.. (HDF5 user block; h5py and HDF5 tools skip it)\n";
  std::memcpy(block + 56, note.data(), std::min(note.size(), kSealBytes - 56));
}

}  // namespace

void seal_file(int fd, const std::string& path) {
  struct stat st;
  MXQAT_CHECK(::fstat(fd, &st) == 0, "cannot stat '", path, "': ", std::strerror(errno));
  const uint64_t length = static_cast<uint64_t>(st.st_size);
  MXQAT_CHECK(length >= kSealBytes, "cannot seal '", path, "': it has ", length,
              " bytes, fewer than the ", kSealBytes, "-byte integrity block");
  unsigned char head[8];
  MXQAT_CHECK(read_at(fd, head, 8, kSealBytes, path) == 8 &&
                  std::memcmp(head, kHdf5Signature, 8) == 0,
              "cannot seal '", path, "': no HDF5 signature after its ", kSealBytes,
              "-byte user block (was it created with the user block?)");
  const auto [hex, hashed] = hash_payload(fd, path, length);
  MXQAT_CHECK(hashed == length, "cannot seal '", path, "': it shrank while being read");
  unsigned char block[kSealBytes];
  make_block(length, hex, block);
  for (size_t done = 0; done < kSealBytes;) {
    ssize_t w = ::pwrite(fd, block + done, kSealBytes - done, static_cast<off_t>(done));
    if (w < 0 && errno == EINTR) continue;
    MXQAT_CHECK(w > 0, "cannot write the integrity block of '", path, "': ",
                std::strerror(errno), " (disk full?)");
    done += static_cast<size_t>(w);
  }
}

void seal_image(std::string& image, const std::string& what) {
  MXQAT_CHECK(image.size() >= kSealBytes + 8 &&
                  std::memcmp(image.data() + kSealBytes, kHdf5Signature, 8) == 0,
              "cannot seal '", what, "': no HDF5 signature after its ", kSealBytes,
              "-byte user block");
  unsigned char block[kSealBytes];
  make_block(image.size(), sha256_hex(image.data() + kSealBytes, image.size() - kSealBytes), block);
  std::memcpy(image.data(), block, kSealBytes);
}

void seal_file(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDWR | O_NOFOLLOW | O_CLOEXEC);
  MXQAT_CHECK(fd >= 0, "cannot open '", path, "' to seal it: ", std::strerror(errno));
  try {
    seal_file(fd, path);
  } catch (...) {
    ::close(fd);
    throw;
  }
  ::close(fd);
}

SealKind seal_kind(int fd) {
  unsigned char head[8];
  if (read_at(fd, head, 8, 0, "") != 8) return SealKind::kOther;
  if (std::memcmp(head, kMagic, 8) == 0) return SealKind::kSealed;
  if (std::memcmp(head, kHdf5Signature, 8) == 0) return SealKind::kPlainHdf5;
  return SealKind::kOther;
}

int open_sealed(const std::string& path) {
  // O_NONBLOCK: opening a FIFO must not wait for a writer; it is refused below.
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  MXQAT_CHECK(fd >= 0 || errno != ENOENT, "HDF5 file '", path, "' does not exist; check the path");
  MXQAT_CHECK(fd >= 0, "cannot open '", path, "': ", std::strerror(errno),
              errno == EISDIR ? " (a directory, not an HDF5 file)" : "");
  try {
    struct stat st;
    MXQAT_CHECK(::fstat(fd, &st) == 0, "cannot stat '", path, "': ", std::strerror(errno));
    MXQAT_CHECK(S_ISREG(st.st_mode), "'", path, "' ",
                S_ISDIR(st.st_mode) ? "is a directory, not an HDF5 file" :
                S_ISFIFO(st.st_mode) ? "is not a regular file (a FIFO)" :
                                       "is not a regular file (a device or socket)",
                "; pass an .h5 file written by mxqat");
    const uint64_t size = static_cast<uint64_t>(st.st_size);
    const SealKind kind = seal_kind(fd);
    MXQAT_CHECK(kind != SealKind::kPlainHdf5, "'", path, "' is an HDF5 file without mxqat's "
                "integrity block: it was written by another program or by an mxqat build from before "
                "integrity blocks, so it cannot be checked before parsing; convert it with 'mxqat "
                "seal ", path, "' (validates it in a separate process and writes it sealed), or "
                "regenerate it with this mxqat");
    MXQAT_CHECK(kind == SealKind::kSealed, "'", path, "' is not a file written by mxqat (",
                size < 8 ? "it is " + std::to_string(size) + " bytes long" :
                           std::string("no mxqat or HDF5 signature at its start"),
                "); it is damaged or of another format");
    unsigned char block[kSealBytes];
    MXQAT_CHECK(size >= kSealBytes && read_at(fd, block, kSealBytes, 0, path) == kSealBytes,
                "'", path, "' is truncated: ", size, " bytes, shorter than its ", kSealBytes,
                "-byte integrity block", kRegenerate);
    const uint32_t version = get_u32(block + 8);
    MXQAT_CHECK(version <= kSealVersion, "'", path, "' has an integrity block of version ", version,
                "; this mxqat reads version ", kSealVersion, ": read it with a newer mxqat");
    MXQAT_CHECK(version >= 1 && get_u32(block + 12) == kSealBytes, "'", path,
                "' has a damaged integrity block (version ", version, ", size ",
                get_u32(block + 12), ")", kRegenerate);
    const uint64_t length = get_u64(block + 16);
    MXQAT_CHECK(size >= length, "'", path, "' is truncated: ", size, " bytes of the ", length,
                " it was written with", kRegenerate);
    MXQAT_CHECK(size == length, "'", path, "' has ", size, " bytes but was written with ", length,
                "; something was appended to it or it is damaged", kRegenerate);
    const std::string want = hex_of(block + 24, 32);
    const auto [got, hashed] = hash_payload(fd, path, length);
    MXQAT_CHECK(hashed == length, "'", path, "' shrank while being read; try again");
    MXQAT_CHECK(got == want, "'", path, "' is damaged: the SHA-256 of its contents (", got,
                ") differs from the one it was written with (", want, ")", kRegenerate);
    unsigned char expected[kSealBytes];
    make_block(length, want, expected);
    MXQAT_CHECK(std::memcmp(expected, block, kSealBytes) == 0, "'", path,
                "' has a damaged integrity block (its text or padding was changed)", kRegenerate);
    ::fcntl(fd, F_SETFL, 0);  // back to blocking reads for HDF5
    return fd;
  } catch (...) {
    ::close(fd);
    throw;
  }
}

std::string run_isolated(const std::string& what, int timeout_s,
                         const std::function<std::string()>& work) {
  int pipefd[2];
  MXQAT_CHECK(::pipe2(pipefd, O_CLOEXEC) == 0, "cannot create a pipe: ", std::strerror(errno));
  std::fflush(nullptr);
  const pid_t pid = ::fork();
  MXQAT_CHECK(pid >= 0, "cannot start a process to read ", what, ": ", std::strerror(errno));
  if (pid == 0) {  // child: status byte ('0' ok, '1' error message) then the payload
    ::close(pipefd[0]);
    std::string out;
    try {
      out = "0" + work();
    } catch (const std::exception& e) {
      out = std::string("1") + e.what();
    } catch (...) {
      out = "1unknown error";
    }
    for (size_t done = 0; done < out.size();) {
      ssize_t w = ::write(pipefd[1], out.data() + done, out.size() - done);
      if (w < 0 && errno == EINTR) continue;
      if (w <= 0) ::_exit(3);
      done += static_cast<size_t>(w);
    }
    ::_exit(0);  // no atexit handlers, no destructors of the parent's objects
  }
  ::close(pipefd[1]);
  std::string data;
  char buf[65536];
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(timeout_s);
  bool timed_out = false;
  for (;;) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now()).count();
    if (left <= 0) {
      timed_out = true;
      break;
    }
    pollfd p{pipefd[0], POLLIN, 0};
    int pr = ::poll(&p, 1, static_cast<int>(std::min<long long>(left, 1000)));
    if (pr < 0 && errno == EINTR) continue;
    if (pr <= 0) continue;
    ssize_t r = ::read(pipefd[0], buf, sizeof buf);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) break;
    data.append(buf, static_cast<size_t>(r));
  }
  ::close(pipefd[0]);
  if (timed_out) ::kill(pid, SIGKILL);
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  MXQAT_CHECK(!timed_out, "reading ", what, " took over ", timeout_s,
              " s and was stopped; the file is damaged or hostile (a loop or a bomb)");
  MXQAT_CHECK(!WIFSIGNALED(status), "reading ", what, " crashed the HDF5 library (signal ",
              WIFSIGNALED(status) ? WTERMSIG(status) : 0,
              ", in a separate process); the file is damaged: regenerate it");
  MXQAT_CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0 && !data.empty(), "reading ", what,
              " failed in its reader process (exit status ", WEXITSTATUS(status), ")");
  if (data[0] == '1') throw Error(data.substr(1));
  return data.substr(1);
}

}  // namespace mxqat::trainers
