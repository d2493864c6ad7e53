// The version of this build of mxqat (CMake's project version), written into checkpoints, exports
// and verification records and printed by `mxqat --version`.
#pragma once

namespace mxqat::trainers {

const char* mxqat_version();

}  // namespace mxqat::trainers
