#!/usr/bin/env bash
# Build and run every test: the host suite (CTest), the PyTorch golden
# regeneration check, and the ARM suites under QEMU when their toolchains exist.
set -euo pipefail
cd "$(dirname "$0")/.."
jobs=$(nproc)
step() { echo; echo "== $* =="; }

step "host build and tests (build/release)"
cmake -S . -B build/release -DCMAKE_BUILD_TYPE=Release
cmake --build build/release -j"$jobs"
ctest --test-dir build/release --output-on-failure -j"$jobs"

if [ -f tools/golden/check_golden.sh ]; then
  step "golden files regenerated with PyTorch match the committed ones"
  bash tools/golden/check_golden.sh
fi

if [ -f .ci/cross.sh ]; then
  step "ARM: aarch64 and armhf under qemu-user, Cortex-M firmware under qemu-system-arm"
  bash .ci/cross.sh
fi
echo; echo "all tests passed"
