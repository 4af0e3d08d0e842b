#!/usr/bin/env python3
"""Runs md_bench's GEMM (and peak) benchmarks with repetitions and prints the
best repetition of each as a table: GFLOP/s and percent of the measured peak
per variant. Best-of-N, because on a shared machine other processes only ever
make a repetition slower.

  bench/gemm_table.py build/simd/bench/md_bench [--reps 5] [--filter REGEX] [--min-time 0.1]
"""
import argparse
import collections
import json
import re
import subprocess
import sys


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("md_bench")
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--filter", default=r"^(peak|gemm_)")
    ap.add_argument("--min-time", default="0.1")
    args = ap.parse_args()
    cmd = [args.md_bench, "--benchmark_filter=" + args.filter, "--benchmark_format=json",
           "--benchmark_repetitions=%d" % args.reps, "--benchmark_min_time=" + args.min_time]
    out = subprocess.run(cmd, check=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    sys.stderr.write(out.stderr)
    data = json.loads(out.stdout)
    best = collections.OrderedDict()
    for b in data["benchmarks"]:
        if b.get("run_type") != "iteration":
            continue
        name = b["run_name"] if "run_name" in b else b["name"]
        g = b.get("GFLOP/s", 0.0)
        p = b.get("%peak", 0.0)
        if name not in best or g > best[name][0]:
            best[name] = (g, p)

    peaks = [(n, v[0]) for n, v in best.items() if n.startswith("peak/")]
    if peaks:
        print("peak (best of %d)" % args.reps)
        for n, g in peaks:
            print("  %-28s %7.1f GFLOP/s" % (n, g))
    rows = collections.OrderedDict()
    variants = []
    for n, (g, p) in best.items():
        m = re.match(r"(gemm_\w+)/(\w+)/M:(\d+)/K:(\d+)/N:(\d+)", n)
        if not m:
            continue
        kind, var, M, K, N = m.group(1), m.group(2), int(m.group(3)), int(m.group(4)), int(m.group(5))
        if var not in variants:
            variants.append(var)
        rows.setdefault((kind, M, K, N), {})[var] = (g, p)
    if rows:
        print("\nGEMMs, best of %d: GFLOP/s (%% of the variant's ISA peak); layer with K inputs, N outputs, batch M" % args.reps)
        print("  %-12s %5s %4s %4s " % ("kernel", "M", "K", "N") + "".join("%20s" % v for v in variants))
        for (kind, M, K, N), per in rows.items():
            cells = []
            for v in variants:
                if v in per:
                    g, p = per[v]
                    cells.append("%20s" % ("%.1f (%.0f%%)" % (g, p)))
                else:
                    cells.append("%20s" % "-")
            print("  %-12s %5d %4d %4d " % (kind, M, K, N) + "".join(cells))


if __name__ == "__main__":
    main()
