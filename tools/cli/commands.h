#pragma once

namespace md::cli {

// Each returns the process exit code: 0 on success, 1 on a runtime failure,
// 2 on a usage error.
int run_train(int argc, char** argv);
int run_sample(int argc, char** argv);
int run_inspect(int argc, char** argv);
int run_convert(int argc, char** argv);  // tools/cli/convert.cpp
int run_predict(int argc, char** argv);  // tools/cli/convert.cpp
int run_eval(int argc, char** argv);
int run_embed(int argc, char** argv);  // embed.cpp

}  // namespace md::cli
