// files.h: temporaries, appends, stale temporaries, output directories, input checks and the run-directory lock.
#include "trainers/util/files.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include "autograd/error.h"

namespace mxqat::trainers {

namespace fs = std::filesystem;

namespace {

std::string random_hex(size_t bytes) {
  std::vector<unsigned char> r(bytes);
  size_t got = 0;
  while (got < bytes) {
    ssize_t n = ::getrandom(r.data() + got, bytes - got, 0);
    if (n < 0 && errno == EINTR) continue;
    MXQAT_CHECK(n > 0, "cannot get random bytes for a temporary name: ", std::strerror(errno));
    got += static_cast<size_t>(n);
  }
  static const char* d = "0123456789abcdef";
  std::string s;
  for (unsigned char c : r) s += d[c >> 4], s += d[c & 15];
  return s;
}

std::string dir_of(const std::string& path) {
  fs::path parent = fs::path(path).parent_path();
  return parent.empty() ? "." : parent.string();
}

}  // namespace

std::string temp_path_for(const std::string& final_path) {
  return final_path + kTempMarker + random_hex(8);
}

int create_temp_file(const std::string& final_path, std::string* temp) {
  for (int attempt = 0;; ++attempt) {
    *temp = temp_path_for(final_path);
    int fd = ::open(temp->c_str(), O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
    if (fd >= 0) return fd;
    MXQAT_CHECK(errno == EEXIST && attempt < 8, "cannot create a temporary file in '",
                dir_of(final_path), "' to write '", final_path, "': ", std::strerror(errno),
                "; check that the directory exists, is writable and the disk has space");
  }
}

void copy_file_atomic(const std::string& from, const std::string& to) {
  int in = ::open(from.c_str(), O_RDONLY | O_CLOEXEC);
  MXQAT_CHECK(in >= 0, "cannot read '", from, "': ", std::strerror(errno));
  std::string tmp;
  int out = -1;
  std::string error;
  try {
    out = create_temp_file(to, &tmp);
  } catch (...) {
    ::close(in);
    throw;
  }
  std::vector<char> buf(size_t{1} << 20);
  for (;;) {
    ssize_t r = ::read(in, buf.data(), buf.size());
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) error = "cannot read '" + from + "': " + std::strerror(errno);
    if (r <= 0) break;
    for (ssize_t done = 0; done < r && error.empty();) {
      ssize_t w = ::write(out, buf.data() + done, static_cast<size_t>(r - done));
      if (w < 0 && errno == EINTR) continue;
      if (w <= 0) error = "cannot write '" + tmp + "': " + std::strerror(errno) + " (disk full?)";
      else done += w;
    }
    if (!error.empty()) break;
  }
  if (error.empty() && ::fsync(out) != 0) error = std::string("fsync: ") + std::strerror(errno);
  ::close(in);
  ::close(out);
  std::error_code ec;
  if (error.empty()) {
    fs::rename(tmp, to, ec);
    if (ec) error = "cannot rename '" + tmp + "' to '" + to + "': " + ec.message();
  }
  if (!error.empty()) {
    fs::remove(tmp, ec);
    MXQAT_FAIL("copying '", from, "' to '", to, "' failed: ", error);
  }
}

int open_append_nofollow(const std::string& path) {
  int fd = ::open(path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK,
                  0644);
  MXQAT_CHECK(fd >= 0, "cannot open '", path, "' for appending: ", std::strerror(errno),
              errno == ELOOP ? " (it is a symbolic link; mxqat never writes through a link: remove "
                               "it)" : "; check that the directory is writable");
  struct stat st;
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    MXQAT_FAIL("'", path, "' is not a regular file (a FIFO or device?); remove it");
  }
  ::fcntl(fd, F_SETFL, O_APPEND);
  return fd;
}

int remove_stale_temps(const std::string& dir) {
  DIR* d = ::opendir(dir.c_str());
  if (!d) return 0;
  int removed = 0;
  while (dirent* e = ::readdir(d)) {
    const std::string name = e->d_name;
    if (name.find(kTempMarker) == std::string::npos) continue;
    const std::string p = dir + "/" + name;
    struct stat st;
    if (::lstat(p.c_str(), &st) == 0 && (S_ISREG(st.st_mode) || S_ISLNK(st.st_mode)) &&
        ::unlink(p.c_str()) == 0)
      ++removed;
  }
  ::closedir(d);
  return removed;
}

void make_output_dir(const std::string& dir, const std::string& what) {
  MXQAT_CHECK(!dir.empty(), what, ": the output directory is empty; give a path");
  for (const auto& part : fs::path(dir))
    MXQAT_CHECK(part.native().size() <= NAME_MAX, what, ": output directory '", dir,
                "' has a component of ", part.native().size(), " characters ('",
                part.native().substr(0, 24), "...'); the filesystem allows at most ", NAME_MAX,
                "; choose a shorter name");
  std::error_code ec;
  fs::create_directories(dir, ec);
  MXQAT_CHECK(!ec, what, ": cannot create the output directory '", dir, "': ", ec.message(),
              "; choose a directory you can write to (--out)");
  MXQAT_CHECK(fs::is_directory(dir, ec), what, ": '", dir, "' exists and is not a directory; ",
              "choose another --out");
  MXQAT_CHECK(::access(dir.c_str(), W_OK | X_OK) == 0, what, ": output directory '", dir,
              "' is not writable: ", std::strerror(errno), "; choose another --out");
}

uint64_t regular_file_size(const std::string& path, const std::string& what) {
  struct stat st;
  MXQAT_CHECK(::stat(path.c_str(), &st) == 0 || errno != ENOENT, what, " '", path,
              "' does not exist; check the path");
  MXQAT_CHECK(::stat(path.c_str(), &st) == 0, what, " '", path, "': ", std::strerror(errno));
  MXQAT_CHECK(S_ISREG(st.st_mode), what, " '", path, "' is not a regular file (",
              S_ISDIR(st.st_mode) ? "a directory" : S_ISFIFO(st.st_mode) ? "a FIFO" :
              S_ISCHR(st.st_mode) || S_ISBLK(st.st_mode) ? "a device" : "a socket or other",
              "); give the path of a file");
  return static_cast<uint64_t>(st.st_size);
}

DirLock::DirLock(const std::string& dir) {
  const std::string path = dir + "/.mxqat.lock";
  fd_ = ::open(path.c_str(), O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK, 0644);
  MXQAT_CHECK(fd_ >= 0, "cannot open the lock file '", path, "': ", std::strerror(errno),
              errno == ELOOP ? " (a symbolic link: remove it)" : "");
  if (::flock(fd_, LOCK_EX | LOCK_NB) != 0) {
    const int err = errno;
    char buf[32] = {};
    ssize_t n = ::pread(fd_, buf, sizeof buf - 1, 0);
    ::close(fd_);
    fd_ = -1;
    const std::string holder = n > 0 ? std::string(buf, static_cast<size_t>(n)) : "?";
    MXQAT_CHECK(err != EWOULDBLOCK, "'", dir, "' is in use by another mxqat process (pid ",
                holder.substr(0, holder.find('\n')), "); wait for it to finish, stop it, or "
                "choose another --out");
    MXQAT_FAIL("cannot lock '", path, "': ", std::strerror(err));
  }
  const std::string pid = std::to_string(::getpid()) + "\n";
  if (::ftruncate(fd_, 0) != 0 || ::pwrite(fd_, pid.data(), pid.size(), 0) < 0) {
    // The lock holds without the pid; a second process just cannot name us.
  }
}

DirLock::~DirLock() {
  if (fd_ >= 0) ::close(fd_);  // releases the flock
}

}  // namespace mxqat::trainers
