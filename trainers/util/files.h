// Careful file primitives for everything mxqat writes into a run directory: unpredictable
// temporaries created exclusively in the target directory, appends that never follow a link,
// removal of our own stale temporaries, an exclusive lock on a run directory, and checks on
// input files (regular file, size) and output paths (creatable, component lengths).
// Not a filesystem library: POSIX only, no HDF5.
#pragma once
#include <cstdint>
#include <string>

namespace mxqat::trainers {

// "<final>.mxqat-tmp-<16 random hex digits>": in the target directory, so the rename is atomic.
inline constexpr const char* kTempMarker = ".mxqat-tmp-";
std::string temp_path_for(const std::string& final_path);

// Creates a new temporary next to `final_path` (O_CREAT|O_EXCL|O_NOFOLLOW, mode 0644 before
// umask) and returns its descriptor; *temp receives its name. Throws naming the directory.
int create_temp_file(const std::string& final_path, std::string* temp);

// Copies `from` to `to` through a new temporary and a rename (never through a link at `to`).
void copy_file_atomic(const std::string& from, const std::string& to);

// Opens `path` for appending (creating it), refusing a symbolic link or anything but a regular
// file at that name. Returns the descriptor.
int open_append_nofollow(const std::string& path);

// Removes the files of `dir` (not recursive) whose names carry kTempMarker: leftovers of a run
// killed mid-write. Call only while holding the directory's lock. Returns how many it removed.
int remove_stale_temps(const std::string& dir);

// Checks that `dir` exists or can be created (each component at most NAME_MAX bytes, the parent
// writable) and creates it; the message names the component or the errno and says what to do.
void make_output_dir(const std::string& dir, const std::string& what);

// Throws unless `path` names a regular file (not a FIFO, device or directory); returns its size.
uint64_t regular_file_size(const std::string& path, const std::string& what);

// An exclusive lock on a run directory (flock on DIR/.mxqat.lock, which holds the holder's pid).
// A second process trying to lock the same directory gets an error naming the holder's pid.
// Released when destroyed (and by the kernel when the process dies, kill -9 included).
class DirLock {
 public:
  explicit DirLock(const std::string& dir);
  ~DirLock();
  DirLock(const DirLock&) = delete;
  DirLock& operator=(const DirLock&) = delete;

 private:
  int fd_ = -1;
};

}  // namespace mxqat::trainers
