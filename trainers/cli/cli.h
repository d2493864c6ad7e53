// The command line of mxqat (train, eval, quantize, ...). The only place that catches
// mxqat::Error, prints it and turns it into an exit code.
#pragma once

namespace mxqat::trainers {
int cli_main(int argc, char** argv);
}
