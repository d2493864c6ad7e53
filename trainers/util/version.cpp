// The only file compiled with MXQAT_VERSION (trainers/CMakeLists.txt).
#include "trainers/util/version.h"

#ifndef MXQAT_VERSION
#define MXQAT_VERSION "unknown"
#endif

namespace mxqat::trainers {

const char* mxqat_version() { return MXQAT_VERSION; }

}  // namespace mxqat::trainers
