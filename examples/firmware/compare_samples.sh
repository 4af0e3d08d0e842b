#!/bin/sh
# Run the firmware under QEMU and check that its samples equal the host's for
# the same weights and seed: the host CLI draws them with
#   microdiffusion sample --model model.mdw --n 8 --seed 42 --batch 8
# (a sample's noise depends only on (seed, sample index, step), so the batch
# size does not matter). Values must agree within TOL (absolute, default 1e-4):
# the firmware uses newlib's expf/log1pf where the host uses glibc's, so the
# last bits may differ; everything else is the same IEEE float arithmetic.
#
# usage: compare_samples.sh --cli HOST_CLI --model model.mdw --elf firmware.elf
#                           [--qemu "qemu-system-arm -M mps2-an386 ... -kernel"]
#                           [--tol 1e-4] [--seed 42] [--n 8]
# Exit status: 0 match, 1 mismatch or failure, 77 skipped (no host CLI).
set -u
cli="" model="" elf="" tol="1e-4" seed=42 n=8
qemu="qemu-system-arm -M mps2-an386 -nographic -semihosting-config enable=on,target=native -kernel"
while [ $# -gt 0 ]; do
  case "$1" in
    --cli) cli="$2"; shift 2 ;;
    --model) model="$2"; shift 2 ;;
    --elf) elf="$2"; shift 2 ;;
    --qemu) qemu="$2"; shift 2 ;;
    --tol) tol="$2"; shift 2 ;;
    --seed) seed="$2"; shift 2 ;;
    --n) n="$2"; shift 2 ;;
    *) echo "compare_samples.sh: unknown argument '$1'" >&2; exit 1 ;;
  esac
done
if [ -z "$cli" ] || [ ! -x "$cli" ]; then
  echo "skipped: no host microdiffusion CLI (configure with -DMD_HOST_CLI=/path/to/build/tools/microdiffusion)"
  exit 77
fi
[ -f "$model" ] || { echo "no weight file '$model'" >&2; exit 1; }
[ -f "$elf" ] || { echo "no firmware image '$elf'" >&2; exit 1; }

tmp=$(mktemp -d "${TMPDIR:-/tmp}/md_fw_cmp.XXXXXX")
trap 'rm -rf "$tmp"' EXIT INT TERM

"$cli" sample --model "$model" --n "$n" --seed "$seed" --batch "$n" --out "$tmp/host.csv" 2>"$tmp/host.err" || {
  echo "host sampling failed:"; cat "$tmp/host.err"; exit 1; }

# shellcheck disable=SC2086  # $qemu is a command line
timeout 300 $qemu "$elf" </dev/null >"$tmp/fw.txt" 2>&1
rc=$?
if [ $rc -ne 0 ]; then
  echo "firmware exited with status $rc:"; cat "$tmp/fw.txt"; exit 1
fi
grep -q '^firmware: ok' "$tmp/fw.txt" || { echo "firmware did not finish:"; cat "$tmp/fw.txt"; exit 1; }

# "sample I: X, Y [bits]" lines against the host CSV, row by row.
grep '^sample [0-9]*:' "$tmp/fw.txt" | sed 's/^sample [0-9]*: //; s/ *\[.*//; s/, */,/g' >"$tmp/fw.csv"
awk -F, -v tol="$tol" -v n="$n" '
  NR == FNR { for (i = 1; i <= NF; ++i) host[FNR, i] = $i; hcols[FNR] = NF; hrows = FNR; next }
  {
    frows = FNR
    if (NF != hcols[FNR]) { printf "row %d: %d values on the firmware, %d on the host\n", FNR - 1, NF, hcols[FNR]; bad = 1; next }
    line = sprintf("  %2d  host", FNR - 1)
    for (i = 1; i <= NF; ++i) line = line sprintf(" %+.9f", host[FNR, i])
    line = line "  firmware"
    for (i = 1; i <= NF; ++i) {
      d = $i - host[FNR, i]; if (d < 0) d = -d
      if (d > maxd) maxd = d
      line = line sprintf(" %+.9f", $i)
    }
    print line
  }
  END {
    if (hrows != n || frows != n) { printf "expected %d samples: host has %d, firmware %d\n", n, hrows, frows; exit 1 }
    printf "max |host - firmware| = %.3g over %d samples (tolerance %g)\n", maxd, n, tol
    if (bad || maxd > tol) { print "MISMATCH"; exit 1 }
    print "samples match"
  }' "$tmp/host.csv" "$tmp/fw.csv"
