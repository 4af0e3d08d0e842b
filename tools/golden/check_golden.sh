#!/usr/bin/env bash
# Regenerate the golden files into a temporary directory and compare them with
# the committed tests/golden/*.txt: the same entries, the same words and
# integers, and floats equal up to reference rounding (a different PyTorch or
# BLAS build may sum in another order):
#     |new - committed| <= 1e-6 * max|committed of that entry| + 1e-5 * |committed|
# Comment lines (which name the PyTorch version) are ignored.
#
#   tools/golden/check_golden.sh            # from anywhere
#   PYTHON=/usr/bin/python3 tools/golden/check_golden.sh
#
# Exits 0 when they agree, or with "torch not installed: skipped" when no
# Python with torch and numpy is found; 1 on a difference; 2 if generation fails.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
committed="$root/tests/golden"

# $PYTHON, when set, is the only interpreter tried.
py=""
if [ -n "${PYTHON:-}" ]; then candidates=("$PYTHON"); else candidates=(python3 /usr/bin/python3); fi
for cand in "${candidates[@]}"; do
  command -v "$cand" >/dev/null 2>&1 || continue
  if "$cand" -c 'import torch, numpy' >/dev/null 2>&1; then
    py="$cand"
    break
  fi
done
if [ -z "$py" ]; then
  echo "torch not installed: skipped"
  exit 0
fi

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

if ! "$py" "$here/make_golden.py" --out "$tmp"; then
  echo "check_golden: make_golden.py failed" >&2
  exit 2
fi

"$py" - "$committed" "$tmp" <<'EOF'
import math
import os
import sys

committed_dir, fresh_dir = sys.argv[1], sys.argv[2]
ABS, REL = 1e-6, 1e-5


def load(path):
    entries = {}
    with open(path) as f:
        for n, line in enumerate(f, 1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            parts = line.split()
            name, count, values = parts[0], int(parts[1]), parts[2:]
            if len(values) != count:
                raise SystemExit(f"{path}:{n}: '{name}' says {count} values, has {len(values)}")
            entries[name] = values
    return entries


def number(word):
    try:
        return int(word), True
    except ValueError:
        pass
    try:
        return float(word), False
    except ValueError:
        return None, False


problems = []
names = sorted(f for f in os.listdir(fresh_dir) if f.endswith(".txt"))
old_names = sorted(f for f in os.listdir(committed_dir) if f.endswith(".txt"))
for f in sorted(set(old_names) - set(names)):
    problems.append(f"{f}: committed but no longer generated")
for f in names:
    if f not in old_names:
        problems.append(f"{f}: generated but not committed")
        continue
    old, new = load(os.path.join(committed_dir, f)), load(os.path.join(fresh_dir, f))
    for name in sorted(set(old) ^ set(new)):
        problems.append(f"{f}: entry '{name}' only in the {'committed' if name in old else 'new'} file")
    worst = (0.0, "")
    for name in sorted(set(old) & set(new)):
        a, b = old[name], new[name]
        if len(a) != len(b):
            problems.append(f"{f}: '{name}' has {len(a)} committed values, {len(b)} new")
            continue
        parsed = [number(w) for w in a]
        floats = [abs(v) for v, is_int in parsed if v is not None and not is_int and math.isfinite(v)]
        scale = max(floats) if floats else 0.0
        bad = 0
        for i, (wa, wb) in enumerate(zip(a, b)):
            va, a_int = number(wa)
            vb, _ = number(wb)
            if va is None or a_int or not math.isfinite(va):  # words, integers, inf: exactly
                ok = wa == wb
                diff = 0.0 if ok else float("inf")
                allowed = 0.0
            else:
                diff = abs(vb - va) if vb is not None else float("inf")
                allowed = ABS * scale + REL * abs(va)
                ok = diff <= allowed
            if allowed > 0 and diff / allowed > worst[0]:
                worst = (diff / allowed, f"{name}[{i}]")
            if not ok:
                if bad < 3:
                    problems.append(f"{f}: {name}[{i}]: committed {wa}, new {wb}")
                bad += 1
        if bad > 3:
            problems.append(f"{f}: {name}: {bad} of {len(a)} values differ")
    print(f"{f}: {len(new)} entries, worst |diff|/allowed {worst[0]:.3g} {worst[1]}")

if problems:
    print("golden files differ from a fresh regeneration:")
    for p in problems:
        print("  " + p)
    sys.exit(1)
print("golden files match a fresh regeneration")
EOF
