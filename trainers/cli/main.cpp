// The mxqat executable: everything is in trainers/cli.
#include "trainers/cli/cli.h"

int main(int argc, char** argv) { return mxqat::trainers::cli_main(argc, argv); }
