#!/usr/bin/env bash
# One-process A/B of a variant's GEMM kernels against another revision's:
# how docs/PERFORMANCE.md judges a kernel change.
#
#   bench/kernel_ab.sh [--build DIR | --lib FILE.a] [--isa avx512|avx2] REV fwd|nt|tn BURSTS "M,K,N;..."
#
# Compiles REV's runtime/src/kernels/<isa>.cpp (its table renamed to
# kBaselineTable) and bench/kernel_ab.cpp, links both with DIR's library
# (default build/release, built from the working tree; or FILE.a), and runs them: per
# layer shape (batch M, K inputs, N outputs), best of BURSTS alternating
# bursts each, the ratio current/baseline (> 1: the working tree is faster)
# and whether both give identical bits. Example, the working tree against
# the last commit:
#   bench/kernel_ab.sh HEAD tn 7 "2000,128,128;2000,256,256"
# The kernel table's layout (runtime/src/kernels/kernels.h) must be the same
# in REV and the working tree. x86-64 with GCC; exits 77 (skipped) where the
# CPU lacks the ISA.
set -euo pipefail

build=build/release
lib=
isa=avx512
while [[ $# -gt 0 && $1 == --* ]]; do
  case $1 in
    --build) build=$2; shift 2 ;;
    --lib) lib=$2; shift 2 ;;
    --isa) isa=$2; shift 2 ;;
    *) echo "kernel_ab: unknown option $1" >&2; exit 2 ;;
  esac
done
if [[ $# -ne 4 ]]; then
  sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//' >&2
  exit 2
fi
rev=$1 kind=$2 bursts=$3 shapes=$4

root=$(git -C "$(dirname "$0")" rev-parse --show-toplevel)
cd "$root"
case $isa in
  avx512) flags=(-mavx512f -mavx512dq -mavx2 -mfma -mf16c) table=Avx512 ;;
  avx2) flags=(-mavx2 -mfma -mf16c) table=Avx2 ;;
  *) echo "kernel_ab: --isa is avx512 or avx2, not $isa" >&2; exit 2 ;;
esac
lib=${lib:-$build/runtime/libmicrodiffusion.a}
if [[ ! -f $lib ]]; then
  echo "kernel_ab: no $lib: build first (cmake --preset release && cmake --build build/release -j2)" >&2
  exit 2
fi
git rev-parse --verify --quiet "$rev^{commit}" > /dev/null || { echo "kernel_ab: no revision $rev" >&2; exit 2; }
if ! git diff --quiet "$rev" -- runtime/src/kernels/kernels.h; then
  echo "kernel_ab: runtime/src/kernels/kernels.h differs between $rev and the working tree;" \
       "the two kernel tables cannot be linked side by side" >&2
  exit 2
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
git archive "$rev" runtime/src runtime/include | tar -x -C "$work"
cxx=${CXX:-g++}
# KERNEL_AB_CXXFLAGS: flags the library was built with that the harness must
# share, e.g. -fsanitize=... for build/asan's (the smoke test passes CMAKE_CXX_FLAGS).
read -r -a extra <<< "${KERNEL_AB_CXXFLAGS:-}"
common=(-std=c++17 -O3 -DNDEBUG "${extra[@]}")
# As runtime/CMakeLists.txt compiles the kernels: no contraction, so both sides round the same way.
"$cxx" "${common[@]}" "${flags[@]}" -ffp-contract=off -I"$work/runtime/src" -I"$work/runtime/include" \
  -Dk${table}Table=kBaselineTable -Dk${table}Forward=kBaselineForward \
  -c "$work/runtime/src/kernels/$isa.cpp" -o "$work/baseline.o"
"$cxx" "${common[@]}" -Iruntime/src -Iruntime/include -c bench/kernel_ab.cpp -o "$work/kernel_ab.o"
"$cxx" "${extra[@]}" -o "$work/kernel_ab" "$work/kernel_ab.o" "$work/baseline.o" "$lib" -lm
echo "kernel_ab: $isa kernels of $(git rev-parse --short "$rev") (baseline) against $lib (current)"
"$work/kernel_ab" "$isa" "$kind" "$bursts" "$shapes"
