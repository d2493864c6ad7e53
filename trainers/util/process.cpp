// Runtime settings.
#include "trainers/util/process.h"

#include <malloc.h>

namespace mxqat::trainers {

void tune_allocator() {
  mallopt(M_MMAP_THRESHOLD, 1 << 30);
  mallopt(M_TRIM_THRESHOLD, 1 << 30);
}

}  // namespace mxqat::trainers
