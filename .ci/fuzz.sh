#!/usr/bin/env bash
# libFuzzer over the readers of untrusted input (docs/BAD_INPUT.md):
#   fuzz_weights  md::load_weights, then model_forward / a Sampler on what loads
#   fuzz_csv      md::cli::parse_csv (and format_csv -> parse_csv round trip)
#   fuzz_args     md::cli::Args::parse and its typed getters (argv split at NUL)
#   fuzz_checkpoint  md::convert::read_checkpoint (PyTorch zip and legacy
#                 pickles, safetensors, .npy, .npz), then md::convert::convert
#                 with --arch auto; what it writes must load
#   fuzz_resume   md::Trainer::restore_checkpoint (train --resume), then a training step
#   fuzz_inflate  md::convert::inflate_raw, the converter's DEFLATE decoder
#                 (checked against zlib when CMake finds it)
# Each is built with clang++ -fsanitize=fuzzer,address,undefined
# -fno-sanitize-recover=all (tests/fuzz/CMakeLists.txt, build dir build/fuzz)
# and run for a bounded time from the committed seeds in tests/fuzz/corpus/.
# Any crash, sanitizer report, leak, timeout (-timeout=10 per input) or
# out-of-memory fails the script; the input is kept under build/fuzz/artifacts/.
#
# Environment: FUZZ_SECONDS (per target, default 60), FUZZ_TARGETS (default:
# every tests/fuzz/fuzz_<name>.cpp), FUZZ_DIR (build/fuzz), JOBS (default 2),
# FUZZ_CXX / FUZZ_CC (clang++ / clang). FUZZ_SECONDS_<name> sets one target's
# time (FUZZ_SECONDS_inflate=600); without it, fuzz_inflate -- one small
# function, saturated within seconds -- gets a third of FUZZ_SECONDS and every
# other target FUZZ_SECONDS.
set -euo pipefail
cd "$(dirname "$0")/.."
start=$(date +%s)
FUZZ_SECONDS=${FUZZ_SECONDS:-60}
if [ -z "${FUZZ_TARGETS:-}" ]; then  # every tests/fuzz/fuzz_<name>.cpp
  FUZZ_TARGETS=$(for f in tests/fuzz/fuzz_*.cpp; do n=${f##*/fuzz_}; echo "${n%.cpp}"; done | sort -r | tr '\n' ' ')
fi
FUZZ_DIR=${FUZZ_DIR:-build/fuzz}
JOBS=${JOBS:-2}
CXX_BIN=${FUZZ_CXX:-clang++}
CC_BIN=${FUZZ_CC:-clang}

# libFuzzer and the sanitizer runtimes: Debian's clang + libclang-rt-14-dev.
probe_dir=$(mktemp -d)
trap 'rm -rf "$probe_dir"' EXIT
probe() {
  echo 'extern "C" int LLVMFuzzerTestOneInput(const unsigned char*, unsigned long) { return 0; }' >"$probe_dir/p.cpp"
  command -v "$CXX_BIN" >/dev/null && command -v cmake >/dev/null &&
    "$CXX_BIN" -fsanitize=fuzzer,address,undefined "$probe_dir/p.cpp" -o "$probe_dir/p" >/dev/null 2>&1
}
if ! probe; then
  echo "fuzz: installing clang, libclang-rt-14-dev and cmake"
  SUDO=""
  if [ "$(id -u)" != 0 ]; then SUDO=sudo; fi
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq clang libclang-rt-14-dev cmake >/dev/null
  probe || { echo "fuzz: $CXX_BIN cannot link -fsanitize=fuzzer,address,undefined" >&2; exit 1; }
fi

echo "== build the fuzz targets with $CXX_BIN ($FUZZ_DIR) =="
t0=$(date +%s)
cmake -S tests/fuzz -B "$FUZZ_DIR" -DCMAKE_CXX_COMPILER="$CXX_BIN" -DCMAKE_C_COMPILER="$CC_BIN" >/dev/null
targets=()
for t in $FUZZ_TARGETS; do targets+=("fuzz_$t"); done
cmake --build "$FUZZ_DIR" -j"$JOBS" --target "${targets[@]}"
echo "fuzz: built in $(( $(date +%s) - t0 ))s"

# Seconds for target $1: FUZZ_SECONDS_<name>, else its share of FUZZ_SECONDS.
seconds_for() {
  local var="FUZZ_SECONDS_$1"
  if [ -n "${!var:-}" ]; then echo "${!var}"; return; fi
  case $1 in
    inflate) echo $(( (FUZZ_SECONDS + 2) / 3 )) ;;
    *) echo "$FUZZ_SECONDS" ;;
  esac
}

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
failed=()
for t in $FUZZ_TARGETS; do
  work="$FUZZ_DIR/work/$t"          # grows across local runs; never committed
  artifacts="$FUZZ_DIR/artifacts/$t"
  log="$FUZZ_DIR/$t.log"
  mkdir -p "$work" "$artifacts"
  rm -f "$artifacts"/*               # only this run's findings are listed below
  dict=()
  [ -f "tests/fuzz/$t.dict" ] && dict=(-dict="tests/fuzz/$t.dict")
  seconds=$(seconds_for "$t")
  echo
  echo "== fuzz_$t for ${seconds}s (seeds tests/fuzz/corpus/$t, log $log) =="
  t0=$(date +%s)
  rc=0
  "$FUZZ_DIR/fuzz_$t" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
    -artifact_prefix="$artifacts/" "${dict[@]}" "$work" "tests/fuzz/corpus/$t" >"$log" 2>&1 || rc=$?
  # Belt and braces: a report in the log fails the run even if the exit code did not.
  if grep -qE "ERROR: (AddressSanitizer|LeakSanitizer|UndefinedBehaviorSanitizer|libFuzzer)|runtime error:|invariant failed" "$log"; then
    [ "$rc" = 0 ] && rc=1
  fi
  stats=$(grep -E "^#[0-9]+[[:space:]]+DONE" "$log" | tail -1 || true)
  echo "fuzz_$t: exit $rc after $(( $(date +%s) - t0 ))s: ${stats:-no final stats}"
  if [ "$rc" != 0 ]; then
    failed+=("$t")
    grep -E "ERROR:|SUMMARY:|runtime error:|invariant failed|Test unit written|#[0-9]+ 0x" "$log" | head -40 || true
    for a in "$artifacts"/*; do
      [ -e "$a" ] && echo "reproduce: $FUZZ_DIR/fuzz_$t $a"
    done
  fi
done
echo
if [ ${#failed[@]} -gt 0 ]; then
  echo "fuzz: FAILED: ${failed[*]} ($(( $(date +%s) - start ))s)"
  exit 1
fi
echo "fuzz: all targets clean ($(echo $FUZZ_TARGETS)), ${FUZZ_SECONDS}s each (inflate $(seconds_for inflate)s), in $(( $(date +%s) - start ))s"
