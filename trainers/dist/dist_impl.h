// Inside the dist room: the MPI implementation's factory (dist_mpi.cpp, only with MXQAT_MPI).
#pragma once
#include <memory>

#include "trainers/dist/dist.h"

namespace mxqat::trainers::detail {
#ifdef MXQAT_MPI
std::unique_ptr<Dist> make_mpi_dist(int* argc, char*** argv);
#endif
void fail_collective(const char* what, const std::string& mpi_error);  // prints, then aborts
}  // namespace mxqat::trainers::detail
