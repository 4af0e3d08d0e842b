#!/usr/bin/env bash
# ARM builds under emulation:
#   1. the host CLI (build/release, preset release), used to embed and check the firmware's model;
#   2. aarch64 and armhf: cross-build everything and run the CTest suite under
#      qemu-user (presets aarch64, armhf), leaving out tests whose names contain
#      Quality or Slow (training-quality runs: minutes natively, far longer emulated);
#   3. Cortex-M4F (mps2-an386), Cortex-M55 (mps3-an547) and Cortex-M7 (mps2-an500):
#      build the firmware, run it under qemu-system-arm, compare its samples with
#      the host CLI's, check the committed model_weights.h and the no-heap link.
# Exits nonzero on any failure; prints how long each step took.
#
# Needs: g++-aarch64-linux-gnu g++-arm-linux-gnueabihf qemu-user gcc-arm-none-eabi
#        libnewlib-arm-none-eabi libstdc++-arm-none-eabi-newlib qemu-system-arm,
#        GoogleTest sources in /usr/src/googletest (googletest package).
# Environment: JOBS (default: nproc), CROSS_LINUX (default "aarch64 armhf"),
#        CROSS_FIRMWARE (default "cortex-m4f cortex-m55 cortex-m7"),
#        CROSS_EXCLUDE (extra ctest -E regex for the qemu-user runs),
#        CROSS_FULL=1 (also run the tests left out under emulation, see below),
#        HOST_BUILD (default build/release: the host CLI's build directory).
set -euo pipefail
cd "$(dirname "$0")/.."
start=$(date +%s)
JOBS=${JOBS:-$(nproc)}
LINUX_PRESETS=${CROSS_LINUX:-aarch64 armhf}
FIRMWARE_PRESETS=${CROSS_FIRMWARE:-cortex-m4f cortex-m55 cortex-m7}
timings=()
now() { date +%s; }
step() { echo; echo "== $* ($(( $(now) - start ))s) =="; }
record() { timings+=("$(printf '%-44s %4ds' "$1" "$2")"); }
failed=()  # a failing step is recorded and the script goes on to the next target

missing=()
for tool in cmake aarch64-linux-gnu-g++ arm-linux-gnueabihf-g++ qemu-aarch64 qemu-arm \
            arm-none-eabi-g++ qemu-system-arm; do
  command -v "$tool" >/dev/null || missing+=("$tool")
done
[ -f /usr/src/googletest/CMakeLists.txt ] || missing+=("/usr/src/googletest (googletest)")
if [ ${#missing[@]} -gt 0 ]; then
  echo "cross.sh: missing ${missing[*]}" >&2
  echo "  apt install g++-aarch64-linux-gnu g++-arm-linux-gnueabihf qemu-user gcc-arm-none-eabi \\" >&2
  echo "              libnewlib-arm-none-eabi libstdc++-arm-none-eabi-newlib qemu-system-arm googletest" >&2
  exit 1
fi

HOST_BUILD=${HOST_BUILD:-build/release}
step "host CLI ($HOST_BUILD)"
t0=$(now)
if [ "$HOST_BUILD" = build/release ]; then
  cmake --preset release >/dev/null
else
  cmake -S . -B "$HOST_BUILD" -DCMAKE_BUILD_TYPE=Release >/dev/null
fi
cmake --build "$HOST_BUILD" -j"$JOBS" --target microdiffusion_cli
cli=$HOST_BUILD/tools/microdiffusion
record "host CLI build" $(( $(now) - t0 ))

# Left out under qemu-user by default (they run natively in tests/run_all.sh;
# CROSS_FULL=1 runs them here too). qemu-user emulates every float operation
# in software, so tests that train or sample for real run 100-300x slower than
# natively (with SIMD kernels); each of these takes minutes emulated:
#  - two exact-variance sampler checks (8 s and 3 s natively);
#  - Conditional.GuidedSamplesLandOnTheirMode (1500 training steps, 0.3 s natively);
#  - CliTraining.KilledRunResumesToTheSameBytes (three CLI trainings; the
#    library-level Checkpoint.RestoreContinuesBitForBit still runs here);
#  - CliTraining.SigintSavesACheckpointAndExitsCleanly (a 40,000-step CLI
#    training, interrupted and then resumed to the end).
EMULATION_EXCLUDED="Sampler.OptimalDenoiserForGaussianDataRecoversItsVariance"
EMULATION_EXCLUDED+="|Samplers.EachMatchesItsExactVarianceRecursionWithTheOptimalDenoiser"
EMULATION_EXCLUDED+="|CliTraining.SigintSavesACheckpointAndExitsCleanly"
EMULATION_EXCLUDED+="|Conditional.GuidedSamplesLandOnTheirMode"
EMULATION_EXCLUDED+="|CliTraining.KilledRunResumesToTheSameBytes"
exclude="Quality|Slow"
[ "${CROSS_FULL:-0}" = 1 ] || exclude="$exclude|$EMULATION_EXCLUDED"
exclude="$exclude${CROSS_EXCLUDE:+|$CROSS_EXCLUDE}"
for preset in $LINUX_PRESETS; do
  step "$preset: configure and build (build/$preset)"
  t0=$(now)
  if ! { cmake --preset "$preset" >/dev/null && cmake --build --preset "$preset" -j"$JOBS"; }; then
    failed+=("$preset build"); continue
  fi
  record "$preset build" $(( $(now) - t0 ))

  step "$preset: CTest under qemu-user, excluding /$exclude/"
  t0=$(now)
  ctest --preset "$preset" -j"$JOBS" -E "$exclude" || failed+=("$preset ctest")
  record "$preset ctest (qemu-user)" $(( $(now) - t0 ))
done

for preset in $FIRMWARE_PRESETS; do
  case "$preset" in
    cortex-m4f) dir=build/m4f board=mps2-an386 ;;
    cortex-m7) dir=build/m7 board=mps2-an500 ;;
    cortex-m55) dir=build/m55 board=mps3-an547 ;;
    *) echo "cross.sh: unknown firmware preset $preset" >&2; exit 1 ;;
  esac
  step "$preset: runtime + firmware ($dir, QEMU $board)"
  t0=$(now)
  if ! { cmake --preset "$preset" -DMD_HOST_CLI="$PWD/$cli" >/dev/null && cmake --build --preset "$preset" -j"$JOBS"; }; then
    failed+=("$preset build"); continue
  fi
  record "$preset build" $(( $(now) - t0 ))

  # The committed model_weights.h (used when no host CLI is at hand) must hold
  # model.mdw's bytes; its comments and arena figure may lag runtime changes.
  generated="$dir/examples/firmware/generated/model_weights.h"
  regen="$cli embed examples/firmware/model.mdw --out examples/firmware/model_weights.h --name md_model"
  if ! cmp -s "$generated" examples/firmware/model_weights.h; then
    if ! cmp -s <(sed -n '/^alignas(64)/,$p' "$generated") <(sed -n '/^alignas(64)/,$p' examples/firmware/model_weights.h); then
      echo "examples/firmware/model_weights.h does not hold model.mdw: regenerate it with" >&2
      echo "  $regen" >&2
      failed+=("$preset: stale model_weights.h")
    fi
    echo "note: examples/firmware/model_weights.h has the right bytes but old figures; refresh with: $regen"
  fi

  step "$preset: firmware under qemu-system-arm -M $board, samples vs host"
  t0=$(now)
  sh examples/firmware/compare_samples.sh --cli "$cli" --model examples/firmware/model.mdw \
    --elf "$dir/examples/firmware/firmware.elf" \
    --qemu "qemu-system-arm -M $board -nographic -semihosting-config enable=on,target=native -kernel" ||
    failed+=("$preset samples vs host")
  ctest --preset "$preset" -j"$JOBS" || failed+=("$preset ctest")
  record "$preset firmware run + ctest" $(( $(now) - t0 ))
done

if [ -x examples/firmware/footprint.sh ] || [ -f examples/firmware/footprint.sh ]; then
  step "firmware footprint"
  bash examples/firmware/footprint.sh --no-build || true
fi

# The issue's budgets (Cortex-M4F, tutorial model, batch 1: sampling code <=
# 16 KiB, RAM <= 8 KiB) hold as a check, not only as a table: the MinSizeRel
# footprint images are built and measured (about a minute) and any "not met"
# in the Targets section fails CI.
case " $FIRMWARE_PRESETS " in
  *" cortex-m4f "*)
    step "firmware footprint budgets (footprint_table.sh, MinSizeRel)"
    t0=$(now)
    if table=$(JOBS="$JOBS" CLI="$cli" bash examples/firmware/footprint_table.sh --stdout 2>/dev/null); then
      targets=$(printf '%s\n' "$table" | sed -n '/^## Targets/,/^## /p')
      printf '%s\n' "$targets" | grep -E 'at most|met' | head -8
      if printf '%s\n' "$targets" | grep -q 'not met'; then failed+=("footprint budget"); fi
      if [ -z "$targets" ]; then failed+=("footprint table has no Targets section"); fi
    else
      failed+=("footprint_table.sh")
    fi
    record "footprint budgets" $(( $(now) - t0 ))
    ;;
esac

echo
for t in "${timings[@]}"; do echo "  $t"; done
if [ ${#failed[@]} -gt 0 ]; then
  echo "cross.sh: FAILED after $(( $(now) - start ))s: ${failed[*]}"
  exit 1
fi
echo "cross.sh: all passed in $(( $(now) - start ))s"
