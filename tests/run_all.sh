#!/usr/bin/env bash
# Build and run every test: the host suite (CTest), the PyTorch golden
# regeneration check, the ARM suites under QEMU, the sanitizer suite and the
# fuzzers. About 25 minutes on 2 cores; QUICK=1 stops after the host suite.
# Environment: FUZZ_SECONDS (per fuzz target here, default 45).
set -euo pipefail
cd "$(dirname "$0")/.."
jobs=$(nproc)
t0=$(date +%s)
# Each step header carries the seconds elapsed so far, to show where CI time goes.
step() { echo; echo "== [$(( $(date +%s) - t0 ))s] $* =="; }

step "host build and tests (build/release)"
cmake -S . -B build/release -DCMAKE_BUILD_TYPE=Release -DMD_BUILD_TESTS=ON -DMD_BUILD_BENCH=ON
cmake --build build/release -j"$jobs"
ctest --test-dir build/release --output-on-failure -j"$jobs"

if [ "${QUICK:-0}" = 1 ]; then echo; echo "host tests passed (QUICK=1: install, golden, ARM, sanitizer and fuzz runs skipped)"; exit 0; fi

step "cmake --install the runtime, build examples/installed against it with find_package and pkg-config"
bash .ci/install.sh

if [ -f tools/golden/check_golden.sh ]; then
  step "golden files regenerated with PyTorch match the committed ones"
  bash tools/golden/check_golden.sh
fi

if [ -f .ci/cross.sh ]; then
  step "ARM: aarch64 and armhf under qemu-user, Cortex-M firmware under qemu-system-arm"
  bash .ci/cross.sh
fi

step "ASan/UBSan over the whole suite, valgrind over the CLI (build/asan)"
bash .ci/sanitize.sh

step "libFuzzer over the weight-file, checkpoint-converter, inflate, CSV and argument readers (build/fuzz)"
FUZZ_SECONDS=${FUZZ_SECONDS:-45} bash .ci/fuzz.sh
echo; echo "all tests passed in $(( $(date +%s) - t0 ))s"
