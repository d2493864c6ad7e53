// Data-parallel processes: who am I (rank), how many are we (size), and the few collective
// operations the step loop needs. The rest of the code talks to this interface only; MPI lives
// in dist_mpi.cpp (built with MXQAT_MPI), and without it, or outside mpirun, the process is one
// rank of one. Every collective is called by every rank in the same order (the step loop's
// structure guarantees it: every rank runs the same steps on the same weights).
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace mxqat::trainers {

class Dist {
 public:
  virtual ~Dist() = default;
  virtual int rank() const = 0;
  virtual int size() const = 0;
  // Rank r contributes bytes[r] bytes (`mine`, its own share); `all` receives every rank's share
  // concatenated in rank order (sum of bytes). Every rank passes the same `bytes`. With mine ==
  // nullptr the rank's share already lies at its place in `all` (MPI_IN_PLACE).
  virtual void allgatherv(const void* mine, void* all, const std::vector<size_t>& bytes) = 0;
  // Every rank sends send_bytes[s] bytes to rank s (`send` holds them concatenated in rank order)
  // and receives recv_bytes[s] bytes from rank s (into `recv`, concatenated in rank order); what
  // rank r sends to s is what s expects from r. `send` and `recv` do not overlap.
  virtual void alltoallv(const void* send, const std::vector<size_t>& send_bytes, void* recv,
                         const std::vector<size_t>& recv_bytes) = 0;
  virtual void broadcast(void* buf, size_t bytes, int root) = 0;
  virtual void barrier() = 0;
  // Ends every rank of the job at once (after an error on this rank): no peer is left waiting.
  [[noreturn]] virtual void abort(int code) = 0;
  virtual std::string describe() const = 0;  // "1 process" | "MPI, 4 processes"
};

// The process's Dist: serial until dist_init found an MPI launch.
Dist& dist();
inline bool is_root() { return dist().rank() == 0; }

// Called once at the start of main: under mpirun (OMPI_COMM_WORLD_SIZE, PMI_SIZE or PMIX_RANK in
// the environment) with MXQAT_MPI, initialises MPI; launched by mpirun without MPI support and
// with more than one process, throws saying to rebuild. dist_finalize at a normal exit.
void dist_init(int* argc, char*** argv);
void dist_finalize();
bool dist_built_with_mpi();

// Peer failure: with more than one rank, SIGTERM/SIGINT (what mpirun sends every rank when one
// of them dies or the job is interrupted) prints "rank R: stopping ... last checkpoint PATH at
// step S; rerun the same command (any -np) to resume" and exits at once: a rank waiting in a
// collective could not reach a step boundary. The message is formatted ahead (here), so the
// handler only writes a buffer (async-signal-safe).
void install_peer_failure_handler();
void set_last_checkpoint(const std::string& path, int64_t step);
// The same text, for an MPI error seen by a collective (then the job is aborted).
std::string peer_failure_message();

}  // namespace mxqat::trainers
