// microdiffusion: train, sample and inspect DDPM models from the shell.
#include <cstdio>
#include <cstring>

#include "cli/commands.h"

namespace {
const char kUsage[] =
    "usage: microdiffusion <command> [options]\n"
    "\n"
    "commands:\n"
    "  train     train a denoiser on a built-in dataset or a CSV file, write a .mdw weight file\n"
    "  sample    draw samples from a .mdw file (CSV, scatter PNG, trajectory PNG)\n"
    "  eval      score a model: variational bound (nats/bits per dim), energy distance, MMD\n"
    "  inspect   print a weight file's header, layers, tensors and arena sizes\n"
    "  convert   convert a PyTorch, safetensors or NumPy checkpoint into a .mdw weight file\n"
    "  predict   evaluate the network's output for rows t,x1,...,xD of a CSV file\n"
    "  embed     write a weight file as a C/C++ header (a const array for firmware flash)\n"
    "\n"
    "Run 'microdiffusion <command> --help' for the options of each command.\n";
}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fputs(kUsage, stderr);
    return 2;
  }
  const char* cmd = argv[1];
  if (!std::strcmp(cmd, "--help") || !std::strcmp(cmd, "-h") || !std::strcmp(cmd, "help")) {
    std::fputs(kUsage, stdout);
    return 0;
  }
  if (!std::strcmp(cmd, "train")) return md::cli::run_train(argc - 2, argv + 2);
  if (!std::strcmp(cmd, "sample")) return md::cli::run_sample(argc - 2, argv + 2);
  if (!std::strcmp(cmd, "inspect")) return md::cli::run_inspect(argc - 2, argv + 2);
  if (!std::strcmp(cmd, "convert")) return md::cli::run_convert(argc - 2, argv + 2);
  if (!std::strcmp(cmd, "predict")) return md::cli::run_predict(argc - 2, argv + 2);
  if (!std::strcmp(cmd, "eval")) return md::cli::run_eval(argc - 2, argv + 2);
  if (!std::strcmp(cmd, "embed")) return md::cli::run_embed(argc - 2, argv + 2);
  std::fprintf(stderr, "microdiffusion: unknown command '%s'\n\n%s", cmd, kUsage);
  return 2;
}
