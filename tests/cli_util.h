// What the command-line tests share: running the CLI (behind $MD_CLI_EMULATOR,
// e.g. qemu-user, in cross builds), reading files back, and a fixture that
// gives each test its own temporary directory.
#pragma once
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>

namespace md_test {

struct CliResult {
  int code;         // the exit status; 1000 + signal number when killed by a signal
  std::string out;  // stdout and stderr together
};

inline std::string cli_command() {
  const char* emulator = std::getenv("MD_CLI_EMULATOR");
  return std::string(emulator ? emulator : "") + (emulator ? " " : "") + MD_CLI_PATH;
}

// Runs `microdiffusion ARGS` through the shell and collects its output.
inline CliResult run_cli(const std::string& args) {
  const std::string cmd = cli_command() + " " + args + " 2>&1";
  CliResult r{-1, ""};
  FILE* p = popen(cmd.c_str(), "r");
  if (!p) return r;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof(buf), p)) > 0) r.out.append(buf, n);
  const int status = pclose(p);
  // A signal (a crash, a sanitizer abort) is never an acceptable answer.
  r.code = WIFEXITED(status) ? WEXITSTATUS(status) : 1000 + (WIFSIGNALED(status) ? WTERMSIG(status) : 0);
  return r;
}

inline bool file_exists(const std::string& path) {
  struct stat st;
  return stat(path.c_str(), &st) == 0;
}

inline std::string slurp(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::stringstream s;
  s << f.rdbuf();
  return s.str();
}

// A fresh /tmp/md_<prefix>_XXXXXX per test, removed afterwards.
class TempDirTest : public ::testing::Test {
 protected:
  explicit TempDirTest(const char* prefix = "test") : prefix_(prefix) {}
  void SetUp() override {
    std::string tmpl = "/tmp/md_" + prefix_ + "_XXXXXX";
    ASSERT_NE(mkdtemp(&tmpl[0]), nullptr);
    dir = tmpl;
  }
  void TearDown() override {
    if (!dir.empty()) std::system(("rm -rf " + dir).c_str());
  }
  std::string path(const std::string& name) const { return dir + "/" + name; }
  std::string dir;

 private:
  std::string prefix_;
};

}  // namespace md_test
