// FUZZ_CHECK(cond): an invariant of a fuzz target. When it fails, the target
// prints "invariant failed" with the condition and its file:line (which names
// the target) and aborts, so libFuzzer saves the input that broke it;
// .ci/fuzz.sh looks for that phrase in the logs.
#pragma once
#include <cstdio>
#include <cstdlib>

#define FUZZ_CHECK(cond)                                                       \
  do {                                                                         \
    if (!(cond)) {                                                             \
      std::fprintf(stderr, "invariant failed: %s (%s:%d)\n", #cond, __FILE__,  \
                   __LINE__);                                                  \
      std::abort();                                                            \
    }                                                                          \
  } while (0)
