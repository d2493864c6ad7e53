// The MPI Dist (OpenMPI or any MPI-3 library): the one file that includes <mpi.h>. Errors on
// MPI_COMM_WORLD return to us (MPI_ERRORS_RETURN), so a failed collective prints which rank saw
// it and the last checkpoint before the job is aborted, instead of MPI's bare message.
// The C API only: no C++ bindings (OMPI_SKIP_MPICXX, MPICH_SKIP_MPICXX) to link.
#define OMPI_SKIP_MPICXX 1
#define MPICH_SKIP_MPICXX 1
#include <mpi.h>

#include <climits>
#include <memory>
#include <string>

#include "autograd/error.h"
#include "trainers/dist/dist_impl.h"

namespace mxqat::trainers::detail {

namespace {
std::string error_text(int code) {
  char buf[MPI_MAX_ERROR_STRING];
  int len = 0;
  MPI_Error_string(code, buf, &len);
  return std::string(buf, static_cast<size_t>(len));
}

void check(int code, const char* what) {
  if (code != MPI_SUCCESS) fail_collective(what, error_text(code));
}

class MpiDist final : public Dist {
 public:
  MpiDist(int* argc, char*** argv) {
    int provided = 0;
    MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided);
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank_);
    MPI_Comm_size(MPI_COMM_WORLD, &size_);
  }
  ~MpiDist() override {
    int finalized = 0;
    MPI_Finalized(&finalized);
    if (!finalized) MPI_Finalize();
  }
  int rank() const override { return rank_; }
  int size() const override { return size_; }

  void allgatherv(const void* mine, void* all, const std::vector<size_t>& bytes) override {
    std::vector<int> counts, displs;
    to_int_counts("allgatherv", bytes, counts, displs);
    check(MPI_Allgatherv(mine ? mine : MPI_IN_PLACE, counts[static_cast<size_t>(rank_)], MPI_BYTE, all,
                         counts.data(), displs.data(), MPI_BYTE, MPI_COMM_WORLD), "MPI_Allgatherv");
  }
  void alltoallv(const void* send, const std::vector<size_t>& send_bytes, void* recv,
                 const std::vector<size_t>& recv_bytes) override {
    std::vector<int> sc, sd, rc, rd;
    to_int_counts("alltoallv", send_bytes, sc, sd);
    to_int_counts("alltoallv", recv_bytes, rc, rd);
    check(MPI_Alltoallv(send, sc.data(), sd.data(), MPI_BYTE, recv, rc.data(), rd.data(), MPI_BYTE,
                        MPI_COMM_WORLD), "MPI_Alltoallv");
  }
  void broadcast(void* buf, size_t bytes, int root) override {
    MXQAT_CHECK(bytes <= size_t(INT_MAX), "broadcast: ", bytes, " bytes exceed MPI's int counts");
    check(MPI_Bcast(buf, static_cast<int>(bytes), MPI_BYTE, root, MPI_COMM_WORLD), "MPI_Bcast");
  }
  void barrier() override { check(MPI_Barrier(MPI_COMM_WORLD), "MPI_Barrier"); }
  [[noreturn]] void abort(int code) override {
    MPI_Abort(MPI_COMM_WORLD, code);
    std::_Exit(code);
  }
  std::string describe() const override { return "MPI, " + std::to_string(size_) + " processes"; }

 private:
  // MPI's int counts and displacements (bytes, concatenated in rank order) for one share per rank.
  void to_int_counts(const char* what, const std::vector<size_t>& bytes, std::vector<int>& counts,
                     std::vector<int>& displs) const {
    MXQAT_CHECK(bytes.size() == static_cast<size_t>(size_), what, ": ", bytes.size(), " shares for ",
                size_, " processes");
    counts.resize(bytes.size());
    displs.resize(bytes.size());
    size_t off = 0;
    for (size_t r = 0; r < bytes.size(); ++r) {
      MXQAT_CHECK(bytes[r] <= size_t(INT_MAX) && off <= size_t(INT_MAX), what, ": ", off + bytes[r],
                  " bytes exceed MPI's int counts; use more micro-batches per process or fewer parameters");
      counts[r] = static_cast<int>(bytes[r]);
      displs[r] = static_cast<int>(off);
      off += bytes[r];
    }
  }
  int rank_ = 0, size_ = 1;
};
}  // namespace

std::unique_ptr<Dist> make_mpi_dist(int* argc, char*** argv) { return std::make_unique<MpiDist>(argc, argv); }

}  // namespace mxqat::trainers::detail
