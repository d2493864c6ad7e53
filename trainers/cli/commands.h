// The subcommands of the CLI, one function each (argv after the command name -> exit code).
// They throw mxqat::Error on bad input; trainers/cli prints it.
#pragma once
#include <string>
#include <vector>

namespace mxqat::trainers {
int cmd_train(const std::vector<std::string>& args);
int cmd_qat(const std::vector<std::string>& args);
int cmd_eval(const std::vector<std::string>& args);
int cmd_quantize(const std::vector<std::string>& args);
int cmd_dequantize(const std::vector<std::string>& args);
int cmd_export(const std::vector<std::string>& args);
int cmd_verify(const std::vector<std::string>& args);
int cmd_inspect(const std::vector<std::string>& args);
int cmd_infer(const std::vector<std::string>& args);
int cmd_ptq(const std::vector<std::string>& args);
int cmd_compare(const std::vector<std::string>& args);
int cmd_sample(const std::vector<std::string>& args);
int cmd_run(const std::vector<std::string>& args);
int cmd_import(const std::vector<std::string>& args);
int cmd_seal(const std::vector<std::string>& args);
}  // namespace mxqat::trainers
