#!/usr/bin/env bash
# Sanitizers and valgrind over the whole project (docs/BAD_INPUT.md):
#   1. build everything in build/asan with -fsanitize=address,undefined
#      (+float-cast-overflow) -fno-sanitize-recover=all, and run the CTest
#      suite under it -- except the Quality* tests (minutes even unsanitized);
#   2. valgrind memcheck over the release CLI: train 20 steps on the swiss
#      roll, then sample 50 points and draw a PNG.
# Any sanitizer report, leak, memcheck error or test failure fails the script.
#
# Environment: SANITIZE_CXX / SANITIZE_CC (default g++ / gcc; clang++ / clang
# work too), JOBS (default 2), ASAN_DIR (build/asan), RELEASE_DIR
# (build/release), SKIP_VALGRIND=1, SKIP_CTEST=1, CTEST_EXCLUDE (default Quality).
set -euo pipefail
cd "$(dirname "$0")/.."
start=$(date +%s)
CXX_BIN=${SANITIZE_CXX:-g++}
CC_BIN=${SANITIZE_CC:-gcc}
JOBS=${JOBS:-2}
ASAN_DIR=${ASAN_DIR:-build/asan}
RELEASE_DIR=${RELEASE_DIR:-build/release}
CTEST_EXCLUDE=${CTEST_EXCLUDE:-Quality}
step() { echo; echo "== $* ($(( $(date +%s) - start ))s) =="; }

need=()
if [[ $CXX_BIN == clang* ]]; then
  # clang's sanitizer runtimes are a separate Debian package.
  { command -v "$CXX_BIN" >/dev/null && ls /usr/lib/llvm-*/lib/clang/*/lib/linux/libclang_rt.asan-x86_64.a >/dev/null 2>&1; } ||
    need+=(clang libclang-rt-14-dev)
else
  command -v "$CXX_BIN" >/dev/null || need+=(g++)
fi
command -v cmake >/dev/null || need+=(cmake)
[ "${SKIP_VALGRIND:-0}" = 1 ] || command -v valgrind >/dev/null || need+=(valgrind)
[ -f /usr/include/gtest/gtest.h ] || need+=(libgtest-dev libgmock-dev googletest)
if [ ${#need[@]} -gt 0 ]; then
  SUDO=""
  if [ "$(id -u)" != 0 ]; then SUDO=sudo; fi
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq "${need[@]}" >/dev/null
fi

# Sanitizer reports abort (a signal no test mistakes for an expected exit
# code), leaks are reported, UBSan prints where.
export ASAN_OPTIONS=${ASAN_OPTIONS:-abort_on_error=1:detect_leaks=1:strict_string_checks=1:detect_stack_use_after_return=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1:abort_on_error=1}
FLAGS="-fsanitize=address,undefined,float-cast-overflow -fno-sanitize-recover=all -fno-omit-frame-pointer -g"

failed=()
if [ "${SKIP_CTEST:-0}" != 1 ]; then
  step "configure and build everything with $CXX_BIN and $FLAGS ($ASAN_DIR)"
  t0=$(date +%s)
  cmake -S . -B "$ASAN_DIR" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DCMAKE_CXX_COMPILER="$CXX_BIN" -DCMAKE_C_COMPILER="$CC_BIN" \
    -DCMAKE_CXX_FLAGS="$FLAGS" -DCMAKE_C_FLAGS="$FLAGS" \
    -DCMAKE_EXE_LINKER_FLAGS="-fsanitize=address,undefined,float-cast-overflow" >/dev/null
  cmake --build "$ASAN_DIR" -j"$JOBS"
  build_s=$(( $(date +%s) - t0 ))

  step "CTest under the sanitizers, excluding '$CTEST_EXCLUDE' (the Quality tests train for minutes)"
  t0=$(date +%s)
  # Keep going to valgrind on a failure, so one run shows every problem.
  ctest --test-dir "$ASAN_DIR" --output-on-failure -j"$JOBS" -E "$CTEST_EXCLUDE" || failed+=("ctest")
  ctest_s=$(( $(date +%s) - t0 ))
  echo "sanitize: build ${build_s}s, ctest ${ctest_s}s"
fi

if [ "${SKIP_VALGRIND:-0}" != 1 ]; then
  step "valgrind memcheck over the release CLI ($RELEASE_DIR)"
  t0=$(date +%s)
  cmake -S . -B "$RELEASE_DIR" -DCMAKE_BUILD_TYPE=Release >/dev/null
  cmake --build "$RELEASE_DIR" -j"$JOBS" --target microdiffusion_cli
  cli="$RELEASE_DIR/tools/microdiffusion"
  out=$(mktemp -d)
  trap 'rm -rf "$out"' EXIT
  vg=(valgrind --tool=memcheck --error-exitcode=1 --leak-check=full --errors-for-leak-kinds=definite,indirect
      --show-leak-kinds=definite,indirect --track-origins=yes --quiet)
  if "${vg[@]}" "$cli" train --data swissroll --steps 20 --batch 32 --quiet --out "$out/model.mdw" &&
     "${vg[@]}" "$cli" sample --model "$out/model.mdw" --n 50 --png "$out/samples.png" &&
     "${vg[@]}" "$cli" inspect "$out/model.mdw" >/dev/null &&
     test -s "$out/model.mdw" && test -s "$out/samples.png"; then
    :
  else
    failed+=("valgrind")
  fi
  echo "sanitize: valgrind $(( $(date +%s) - t0 ))s"
fi
if [ ${#failed[@]} -gt 0 ]; then
  echo "sanitize: FAILED: ${failed[*]} ($(( $(date +%s) - start ))s)"
  exit 1
fi
echo "sanitize: all clean in $(( $(date +%s) - start ))s"
