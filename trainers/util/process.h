// Process-wide runtime settings shared by the CLI and the benchmarks.
#pragma once

namespace mxqat::trainers {

// Keeps glibc malloc from returning large buffers to the OS after every training step (and
// re-faulting them in the next): with the default dynamic mmap threshold each step's
// activations and gradients cost page faults that can exceed the arithmetic (measured 10x on
// some backward ops on our VMs). Same effect as GLIBC_TUNABLES mmap/trim thresholds of 1 GiB.
void tune_allocator();

}  // namespace mxqat::trainers
