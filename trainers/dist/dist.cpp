// The serial Dist, the process-wide instance, and the peer-failure message (see dist.h).
#include "trainers/dist/dist.h"

#include <unistd.h>

#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>

#include "autograd/error.h"
#include "trainers/dist/dist_impl.h"

namespace mxqat::trainers {

namespace {
class SerialDist final : public Dist {
 public:
  int rank() const override { return 0; }
  int size() const override { return 1; }
  void allgatherv(const void* mine, void* all, const std::vector<size_t>& bytes) override {
    MXQAT_CHECK(bytes.size() == 1, "allgatherv: ", bytes.size(), " shares for 1 process");
    if (mine && bytes[0] > 0) std::memmove(all, mine, bytes[0]);
  }
  void alltoallv(const void* send, const std::vector<size_t>& send_bytes, void* recv,
                 const std::vector<size_t>& recv_bytes) override {
    MXQAT_CHECK(send_bytes.size() == 1 && recv_bytes.size() == 1, "alltoallv: ", send_bytes.size(),
                " and ", recv_bytes.size(), " shares for 1 process");
    MXQAT_CHECK(send_bytes[0] == recv_bytes[0], "alltoallv: 1 process sends ", send_bytes[0],
                " bytes to itself but expects ", recv_bytes[0]);
    if (send_bytes[0] > 0) std::memcpy(recv, send, send_bytes[0]);
  }
  void broadcast(void*, size_t, int root) override {
    MXQAT_CHECK(root == 0, "broadcast: root ", root, " of 1 process");
  }
  void barrier() override {}
  [[noreturn]] void abort(int code) override { std::_Exit(code); }
  std::string describe() const override { return "1 process"; }
};

std::unique_ptr<Dist>& instance() {
  static std::unique_ptr<Dist> d = std::make_unique<SerialDist>();
  return d;
}

// The peer-failure message, formatted ahead of any signal.
char g_message[1024] = "";
size_t g_message_len = 0;
int g_rank = 0;
std::string g_ckpt_path;
int64_t g_ckpt_step = -1;

void format_message() {
  std::string m = "rank " + std::to_string(g_rank) +
                  ": stopping because a peer failed or the job was interrupted; ";
  m += g_ckpt_step < 0 ? std::string("no checkpoint written yet")
                       : "last checkpoint " + g_ckpt_path + " at step " + std::to_string(g_ckpt_step);
  m += "; rerun the same command (any -np) to resume\n";
  if (m.size() >= sizeof g_message) m = m.substr(0, sizeof g_message - 2) + "\n";
  std::memcpy(g_message, m.data(), m.size());
  g_message_len = m.size();
}

extern "C" void on_peer_failure(int sig) {
  ssize_t w = ::write(STDERR_FILENO, g_message, g_message_len);
  (void)w;
  ::_exit(128 + sig);
}

const char* env(const char* name) {
  const char* v = std::getenv(name);
  return v && *v ? v : nullptr;
}
}  // namespace

Dist& dist() { return *instance(); }

bool dist_built_with_mpi() {
#ifdef MXQAT_MPI
  return true;
#else
  return false;
#endif
}

void dist_init(int* argc, char*** argv) {
  const char* size = env("OMPI_COMM_WORLD_SIZE");
  if (!size) size = env("PMI_SIZE");
  const bool launched = size || env("PMIX_RANK");
  if (!launched) return;
#ifdef MXQAT_MPI
  instance() = detail::make_mpi_dist(argc, argv);
#else
  (void)argc, (void)argv;
  MXQAT_CHECK(!size || std::atoi(size) <= 1, "this mxqat was built without MPI (MXQAT_MPI=OFF, or "
              "CMake found no MPI) but runs as one of ", size, " processes under mpirun, which would "
              "train ", size, " copies side by side; install libopenmpi-dev (scripts/install_deps.sh "
              "--mpi), configure again and rebuild");
#endif
  g_rank = dist().rank();
  format_message();
}

// MpiDist's destructor calls MPI_Finalize; what follows is one process again.
void dist_finalize() { instance() = std::make_unique<SerialDist>(); }

void install_peer_failure_handler() {
  if (dist().size() <= 1) return;
  format_message();
  struct sigaction sa {};
  sa.sa_handler = on_peer_failure;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGTERM, &sa, nullptr);
  sigaction(SIGINT, &sa, nullptr);
}

void set_last_checkpoint(const std::string& path, int64_t step) {
  g_ckpt_path = path;
  g_ckpt_step = step;
  // Block the signals while the buffer changes, so the handler never prints half of it.
  sigset_t block, old;
  sigemptyset(&block);
  sigaddset(&block, SIGTERM);
  sigaddset(&block, SIGINT);
  sigprocmask(SIG_BLOCK, &block, &old);
  format_message();
  sigprocmask(SIG_SETMASK, &old, nullptr);
}

std::string peer_failure_message() { return std::string(g_message, g_message_len); }

namespace detail {
void fail_collective(const char* what, const std::string& mpi_error) {
  const std::string m = "rank " + std::to_string(g_rank) + ": " + what + " failed (" + mpi_error +
                        "): a peer probably died\n" + peer_failure_message();
  ssize_t w = ::write(STDERR_FILENO, m.data(), m.size());
  (void)w;
  dist().abort(1);
}
}  // namespace detail

}  // namespace mxqat::trainers
