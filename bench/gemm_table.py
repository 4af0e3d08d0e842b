#!/usr/bin/env python3
"""Runs md_bench's GEMM (and peak) benchmarks and prints the best run of each
as a table: GFLOP/s and percent of the measured peak per variant.

Best-of-N, because on a shared machine other processes (or, on a VM, other
guests) only ever make a run slower. The N runs are separate md_bench
processes, one after another, each covering every benchmark once: a burst of
noise then costs one run of each benchmark, not all N repetitions of one (as
back-to-back repetitions in one process would). The percentages are against
the best peak seen over all runs, not each process's own peak measurement.

With --tables T the whole table is measured T times in a row and a summary
follows: for every cell, the median and the range of its percent of peak over
the T tables (each against its own table's peak), to one decimal. That is how
a target like "75% of the peak" is judged on a machine whose memory system has
slow phases the register-only peak loop does not see: one table is one sample
of the phase, not the kernel's speed.

  bench/gemm_table.py build/release/bench/md_bench [--reps 9] [--tables 1] [--filter REGEX] [--min-time 0.1]
"""
import argparse
import collections
import json
import re
import statistics
import subprocess
import sys

# Which peak benchmark (peak/<isa>/...) measures the ISA a kernel variant uses;
# the reference is compiled for baseline x86-64 (SSE2 mul + add) on x86.
VARIANT_ISA = {"reference": "sse2", "avx2": "avx2", "avx512": "avx512", "neon": "neon", "helium": "helium"}


def run_once(md_bench, flt, min_time):
    cmd = [md_bench, "--benchmark_filter=" + flt, "--benchmark_format=json", "--benchmark_min_time=" + min_time]
    out = subprocess.run(cmd, check=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    return json.loads(out.stdout)["benchmarks"]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("md_bench")
    ap.add_argument("--reps", type=int, default=9, help="separate runs; the best of each benchmark is kept")
    ap.add_argument("--filter", default=r"^(peak|gemm_)")
    ap.add_argument("--min-time", default="0.1")
    ap.add_argument("--tables", type=int, default=1, help="measure the whole table this many times, then summarise")
    args = ap.parse_args()

    summary = collections.OrderedDict()  # (kind, M, K, N) -> {variant: [% of peak per table]}
    variants = []
    for t in range(args.tables):
        if args.tables > 1:
            print("%stable %d of %d" % ("\n" if t else "", t + 1, args.tables))
            sys.stdout.flush()
        for (kind, M, K, N, v), pct in table(args).items():
            summary.setdefault((kind, M, K, N), {}).setdefault(v, []).append(pct)
            if v not in variants:
                variants.append(v)
    if args.tables > 1 and summary:
        print("\nsummary over %d tables: %% of the table's own peak, median (lowest-highest)" % args.tables)
        print("  %-12s %5s %4s %4s " % ("kernel", "M", "K", "N") + "".join("%22s" % v for v in variants))
        for (kind, M, K, N), per in summary.items():
            out = []
            for v in variants:
                p = sorted(per.get(v, []))
                out.append("%22s" % ("%.1f (%.1f-%.1f)" % (statistics.median(p), p[0], p[-1]) if p else "-"))
            print("  %-12s %5d %4d %4d " % (kind, M, K, N) + "".join(out))


def table(args):
    """Measures and prints one best-of-reps table; returns {(kind, M, K, N, variant): % of peak}."""
    best = collections.OrderedDict()  # name -> best GFLOP/s
    for rep in range(args.reps):
        for b in run_once(args.md_bench, args.filter, args.min_time):
            if b.get("run_type", "iteration") != "iteration":
                continue
            g = b.get("GFLOP/s", 0.0)
            best[b["name"]] = max(best.get(b["name"], 0.0), g)
        sys.stderr.write("gemm_table: run %d of %d done\n" % (rep + 1, args.reps))

    peak = {}  # isa -> best GFLOP/s over its chain counts
    for n, g in best.items():
        m = re.match(r"peak/(\w+)/", n)
        if m:
            peak[m.group(1)] = max(peak.get(m.group(1), 0.0), g)
    if peak:
        print("peak (best of %d runs)" % args.reps)
        for isa, g in peak.items():
            print("  %-10s %7.1f GFLOP/s" % (isa, g))

    rows = collections.OrderedDict()
    percents = collections.OrderedDict()
    variants = []
    for n, g in best.items():
        m = re.match(r"(gemm_\w+)/(\w+)/M:(\d+)/K:(\d+)/N:(\d+)", n)
        if not m:
            continue
        kind, var, M, K, N = m.group(1), m.group(2), int(m.group(3)), int(m.group(4)), int(m.group(5))
        if var not in variants:
            variants.append(var)
        rows.setdefault((kind, M, K, N), {})[var] = g
    if rows:
        print("\nGEMMs, best of %d runs: GFLOP/s (%% of the best peak of the variant's ISA); "
              "layer with K inputs, N outputs, batch M" % args.reps)
        print("  %-12s %5s %4s %4s " % ("kernel", "M", "K", "N") + "".join("%20s" % v for v in variants))
        for (kind, M, K, N), per in rows.items():
            cells = []
            for v in variants:
                if v not in per:
                    cells.append("%20s" % "-")
                    continue
                p = peak.get(VARIANT_ISA.get(v, v), 0.0)
                cell = "%.1f" % per[v]
                if p > 0:
                    percents[(kind, M, K, N, v)] = 100.0 * per[v] / p
                    cell += " (%.0f%%)" % percents[(kind, M, K, N, v)]
                cells.append("%20s" % cell)
            print("  %-12s %5d %4d %4d " % (kind, M, K, N) + "".join(cells))
    sys.stdout.flush()
    return percents


if __name__ == "__main__":
    main()
