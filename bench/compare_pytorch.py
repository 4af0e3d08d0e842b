#!/usr/bin/env python3
"""Training and sampling speed of microdiffusion against PyTorch on the same CPU.

    /usr/bin/python3 bench/compare_pytorch.py [BUILD_DIR] [--reps 5] [--threads 1,2] [--json out.json] [--quick]

BUILD_DIR (default build/release) holds bench/md_timing; --md-timing PATH names
it directly. Both sides run the same networks from identical initial weights
(PyTorch's initialisation of tools/python/microdiffusion_torch.py's modules,
written with export_mdw and read by md_timing --init / --model), the same
schedule (the linear schedule at the model's T) and the same training recipe:

  * a minibatch of B points drawn with replacement from 100,000 swiss-roll
    points, t ~ U{0..T-1}, eps ~ N(0, I), x_t = sqrt(ab_t) x_0 + sqrt(1 - ab_t) eps,
    L_simple = mse(model(x_t, t), eps);
  * Adam (lr, betas (0.9, 0.999), eps 1e-8, no weight decay), constant lr, no
    gradient clipping, EMA of the weights with decay 0.995 after every step
    (md::TrainConfig's defaults, which md_timing keeps);
  * sampling: ancestral DDPM (Algorithm 2, sigma^2 = beta tilde) of all points
    in one batch, from N(0, I) noise.

torch's BLAS matters: Debian's python3-torch (BLAS_INFO=generic) calls whatever
libblas.so.3 resolves to, and netlib's reference BLAS (the default when no
optimised one is installed) runs its GEMMs at a few GFLOP/s. The header names
the library and torch's GEMM speed, and a warning says when it looks like the
reference. For a fair comparison point LD_LIBRARY_PATH at OpenBLAS's OpenMP
build, which shares torch's OpenMP threads (the pthreads build starts threads
of its own and oversubscribes the cores at --threads 2):

    apt-get download libopenblas0-openmp && dpkg -x libopenblas0-openmp_*.deb /tmp/openblas
    LD_LIBRARY_PATH=/tmp/openblas/usr/lib/x86_64-linux-gnu/openblas-openmp /usr/bin/python3 bench/compare_pytorch.py

The script sets OpenBLAS's thread count with torch's (torch.set_num_threads
alone does not reach it).

The PyTorch side is written as a PyTorch user would: one Python function per
training step (forward, mse, backward, optimizer.step, torch._foreach_ EMA),
and a Python loop over the timesteps under torch.inference_mode() to sample.
Each measurement starts a fresh model, optimizer or sampler; warm-up steps
(training) or forward passes (sampling) run untimed first. PyTorch runs in
this process with torch.set_num_threads(n), microdiffusion as md_timing
--threads n; measurements alternate torch, md, torch, md, ... and the table
shows the medians of --reps repetitions.

Cases:
  a. train tutorial b32     training step, preset_tutorial (T = 100), batch 32
  b. train default b256     training step, preset_default (T = 1000), batch 256
  c. sample default         1000 points x 1000 steps, preset_default (T = 1000)
  d. sample tutorial        2000 points x 100 steps, preset_tutorial (T = 100)

As a check that both sides do the same thing, the table also shows the mean
loss of the last tenth of the timed steps (training) and the samples' root
mean square (sampling) of each side; a large difference is reported.
--quick runs a few steps of each case (a smoke test, not a measurement).
"""

import argparse
import copy
import ctypes
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np
import torch
import torch.nn.functional as F

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tools", "python"))
from microdiffusion_torch import DefaultModel, TutorialModel, export_mdw, schedule_betas, schedule_params  # noqa: E402

LR = 1e-3
EMA_DECAY = 0.995
N_DATA = 100000
DATA_SEED = 0

# name, kind, model, batch (train) / points (sample), timed steps (train) /
# sampling steps, warm-up steps (train) / forward passes (sample); then --quick's.
CASES = [
    dict(name="train tutorial b32", kind="train", model="tutorial", size=32, steps=2000, warmup=50,
         quick=dict(steps=30, warmup=3)),
    dict(name="train default b256", kind="train", model="default", size=256, steps=300, warmup=10,
         quick=dict(steps=5, warmup=2)),
    dict(name="sample default 1000x1000", kind="sample", model="default", size=1000, steps=1000, warmup=3,
         quick=dict(size=64, steps=50, warmup=1)),
    dict(name="sample tutorial 2000x100", kind="sample", model="tutorial", size=2000, steps=100, warmup=3,
         quick=dict(size=100, steps=100, warmup=1)),
]
MODEL_T = {"tutorial": 100, "default": 1000}


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.lower().startswith(("model name", "hardware", "cpu model")):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def torch_blas():
    """(path, kind, set_threads) of the BLAS library torch called into: Debian's python3-torch
    (BLAS_INFO=generic) uses whatever libblas.so.3 resolves to, possibly netlib's unoptimised
    reference. set_threads sets OpenBLAS's own thread count (torch.set_num_threads does not)."""
    paths = []
    try:
        with open("/proc/self/maps") as f:
            for line in f:
                p = line.split()[-1]
                if "blas" in os.path.basename(p).lower() and p not in paths:
                    paths.append(p)
    except OSError:
        pass
    if not paths:
        return "none (torch's own or MKL/oneDNN kernels)", "builtin", None
    for p in paths:
        try:
            lib = ctypes.CDLL(p)
        except OSError:
            continue
        if hasattr(lib, "openblas_set_num_threads"):
            parallel = lib.openblas_get_parallel() if hasattr(lib, "openblas_get_parallel") else -1
            kind = {0: "OpenBLAS (sequential)", 1: "OpenBLAS (pthreads)", 2: "OpenBLAS (OpenMP)"}.get(parallel, "OpenBLAS")
            return os.path.realpath(p), kind, lib.openblas_set_num_threads
        if hasattr(lib, "mkl_set_num_threads"):
            return os.path.realpath(p), "MKL", None
        if hasattr(lib, "bli_thread_set_num_threads"):
            return os.path.realpath(p), "BLIS", lib.bli_thread_set_num_threads
    return os.path.realpath(paths[0]), "reference (netlib) or unknown", None


def torch_gemm_gflops(M=256, K=128, N=128):
    """torch's Linear at the default model's hidden shape, GFLOP/s (best of 5 runs of ~20 calls)."""
    x, w, b = torch.randn(M, K), torch.randn(N, K), torch.randn(N)
    best = float("inf")
    for _ in range(5):
        start = time.perf_counter()
        for _ in range(20):
            F.linear(x, w, b)
        best = min(best, (time.perf_counter() - start) / 20)
    return 2.0 * M * K * N / best * 1e-9


def make_model(name):
    return TutorialModel(n_steps=MODEL_T["tutorial"]) if name == "tutorial" else DefaultModel()


def swiss_roll(n, seed):
    """md::make_dataset's swiss roll (runtime/src/data.cpp), from numpy's generator."""
    rng = np.random.default_rng(seed)
    u = rng.random(n)
    z = rng.standard_normal((n, 2))
    s = 1.5 * math.pi * (1.0 + 2.0 * u)
    x = (s * np.cos(s) + 0.5 * z[:, 0]) / 10.0
    y = (s * np.sin(s) + 0.5 * z[:, 1]) / 10.0
    return torch.from_numpy(np.stack([x, y], axis=1).astype(np.float32))


def alpha_bar(T):
    """alpha_bar of the linear schedule at T in double, as md::build_schedule forms it."""
    return np.cumprod(1.0 - schedule_betas(schedule_params(T, "linear")))


def linspace_timesteps(T, K):
    """md::make_timesteps(kLinspace): round(linspace(0, T - 1, K)), half away from zero."""
    if K >= T:
        return list(range(T))
    return [int(math.floor(v + 0.5)) for v in np.linspace(0.0, T - 1.0, K)]


# ---------------------------------------------------------------------------
# PyTorch
# ---------------------------------------------------------------------------


def torch_train(model_name, init_state, data, batch, steps, warmup):
    model = make_model(model_name)
    model.load_state_dict(init_state)
    params = list(model.parameters())
    opt = torch.optim.Adam(params, lr=LR, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, foreach=True)
    ema = [p.detach().clone() for p in params]
    ab = alpha_bar(MODEL_T[model_name])
    sqrt_ab = torch.from_numpy(np.sqrt(ab).astype(np.float32))
    sqrt_1m_ab = torch.from_numpy(np.sqrt(1.0 - ab).astype(np.float32))
    T, N, D = len(ab), data.shape[0], data.shape[1]

    def step():
        x0 = data[torch.randint(N, (batch,))]
        t = torch.randint(T, (batch,))
        noise = torch.randn(batch, D)
        x_t = sqrt_ab[t].unsqueeze(1) * x0 + sqrt_1m_ab[t].unsqueeze(1) * noise
        loss = F.mse_loss(model(x_t, t), noise)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        with torch.no_grad():
            torch._foreach_mul_(ema, EMA_DECAY)
            torch._foreach_add_(ema, params, alpha=1.0 - EMA_DECAY)
        return loss

    for _ in range(warmup):
        step()
    tail = max(1, steps // 10)
    loss_sum = 0.0
    start = time.perf_counter()
    for i in range(steps):
        loss = step()
        if i >= steps - tail:
            loss_sum += loss.item()
    elapsed = time.perf_counter() - start
    return 1e3 * elapsed / steps, loss_sum / tail


def torch_sample(model_name, init_state, n, steps, warmup):
    model = make_model(model_name)
    model.load_state_dict(init_state)
    model.eval()
    ab = alpha_bar(MODEL_T[model_name])
    ts = linspace_timesteps(len(ab), steps)
    # Respaced Algorithm 2 as md::Sampler forms it (the identity when steps = T).
    coef = []
    for i in range(len(ts) - 1, -1, -1):
        a, a_prev = ab[ts[i]], (ab[ts[i - 1]] if i > 0 else 1.0)
        beta = 1.0 - a / a_prev
        var = beta * (1.0 - a_prev) / (1.0 - a) if i > 0 else 0.0
        coef.append((ts[i], float(np.float32(1.0 / math.sqrt(1.0 - beta))),
                     float(np.float32(beta / math.sqrt(1.0 - a))), float(np.float32(math.sqrt(var)))))
    D = model.D
    with torch.inference_mode():
        x = torch.full((n, D), 0.5)
        t = torch.full((n,), len(ab) // 2, dtype=torch.long)
        for _ in range(warmup):
            model(x, t)
        start = time.perf_counter()
        x = torch.randn(n, D)
        for k, a, c, sigma in coef:
            eps = model(x, torch.full((n,), k, dtype=torch.long))
            x = a * (x - c * eps)
            if sigma > 0.0:
                x.add_(torch.randn(n, D), alpha=sigma)
        elapsed = time.perf_counter() - start
    return elapsed, float(x.pow(2).mean().sqrt())


# ---------------------------------------------------------------------------
# microdiffusion
# ---------------------------------------------------------------------------


def run_md(md_timing, args):
    cmd = [md_timing] + [str(a) for a in args]
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode != 0:
        raise SystemExit(f"compare_pytorch: {' '.join(cmd)} failed ({p.returncode}):\n{p.stderr}")
    lines = [line for line in p.stdout.splitlines() if line.startswith("{")]
    if not lines:
        raise SystemExit(f"compare_pytorch: no JSON from {' '.join(cmd)}:\n{p.stdout}{p.stderr}")
    return json.loads(lines[-1])


def md_train(md_timing, init_file, batch, steps, warmup, threads):
    r = run_md(md_timing, ["train", "--init", init_file, "--batch", batch, "--steps", steps, "--warmup", warmup,
                           "--lr", LR, "--ema", EMA_DECAY, "--clip", 0, "--threads", threads, "--data", "swissroll",
                           "--n-data", N_DATA, "--seed", DATA_SEED])
    return r["ms_per_step"], r["loss"], r["variant"]


def md_sample(md_timing, model_file, n, steps, warmup, threads, seed):
    r = run_md(md_timing, ["sample", "--model", model_file, "--n", n, "--steps", steps, "--warmup", warmup,
                           "--threads", threads, "--seed", seed])
    return r["seconds"], r["rms"], r["variant"]


# ---------------------------------------------------------------------------


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("build_dir", nargs="?", default=os.path.join(ROOT, "build", "release"),
                    help="build directory holding bench/md_timing (default: build/release)")
    ap.add_argument("--md-timing", help="path of md_timing (default: BUILD_DIR/bench/md_timing)")
    ap.add_argument("--reps", type=int, default=5, help="repetitions of each measurement (default: 5)")
    ap.add_argument("--threads", default="1,2", help="thread counts, comma-separated (default: 1,2)")
    ap.add_argument("--cases", default="abcd", help="which cases to run, letters a-d (default: abcd)")
    ap.add_argument("--json", help="also write every measurement to this file")
    ap.add_argument("--quick", action="store_true", help="a few steps of each case: a smoke test, not a measurement")
    args = ap.parse_args()
    md_timing = args.md_timing or os.path.join(args.build_dir, "bench", "md_timing")
    if not os.access(md_timing, os.X_OK):
        ap.error(f"no md_timing at '{md_timing}' (build it, or give BUILD_DIR or --md-timing)")
    try:
        thread_counts = [int(v) for v in args.threads.split(",")]
    except ValueError:
        ap.error(f"--threads must be a comma-separated list of integers, got '{args.threads}'")
    if args.reps < 1 or not thread_counts or min(thread_counts) < 1:
        ap.error("--reps and --threads must be at least 1")
    if not args.cases or any(c not in "abcd" for c in args.cases):
        ap.error("--cases takes letters a, b, c, d")
    cases = []
    for letter, case in zip("abcd", CASES):
        if letter in args.cases:
            c = dict(case, letter=letter)
            if args.quick:
                c.update(case["quick"])
            cases.append(c)

    blas_path, blas_kind, blas_set_threads = torch_blas()

    def set_threads(n):
        torch.set_num_threads(n)
        if blas_set_threads is not None:
            blas_set_threads(n)

    set_threads(1)
    gemm_gflops = torch_gemm_gflops()
    torch.manual_seed(0)
    data = swiss_roll(N_DATA, DATA_SEED)
    results = {}  # (letter, threads) -> dict(torch=[...], md=[...], torch_check=[...], md_check=[...])
    variant = None
    with tempfile.TemporaryDirectory(prefix="compare_pytorch.") as tmp:
        # One initial model per architecture, exported for md_timing.
        init_states, init_files = {}, {}
        for name in sorted({c["model"] for c in cases}):
            model = make_model(name)
            init_states[name] = copy.deepcopy(model.state_dict())
            init_files[name] = os.path.join(tmp, f"{name}.mdw")
            export_mdw(model, init_files[name], T=MODEL_T[name], schedule="linear", is_ema=False, dataset="swissroll")
        for rep in range(args.reps):
            for c in cases:
                for threads in thread_counts:
                    r = results.setdefault((c["letter"], threads), dict(torch=[], md=[], torch_check=[], md_check=[]))
                    set_threads(threads)
                    torch.manual_seed(rep)  # the same draws on every thread count
                    if c["kind"] == "train":
                        t_val, t_chk = torch_train(c["model"], init_states[c["model"]], data, c["size"], c["steps"],
                                                   c["warmup"])
                        time.sleep(0.1)  # let torch's idle threads go to sleep
                        m_val, m_chk, variant = md_train(md_timing, init_files[c["model"]], c["size"], c["steps"],
                                                         c["warmup"], threads)
                    else:
                        t_val, t_chk = torch_sample(c["model"], init_states[c["model"]], c["size"], c["steps"],
                                                    c["warmup"])
                        time.sleep(0.1)
                        m_val, m_chk, variant = md_sample(md_timing, init_files[c["model"]], c["size"], c["steps"],
                                                          c["warmup"], threads, 0)
                    r["torch"].append(t_val)
                    r["md"].append(m_val)
                    r["torch_check"].append(t_chk)
                    r["md_check"].append(m_chk)
                    print(f"  rep {rep + 1}/{args.reps} {c['letter']}. {c['name']:<26} threads {threads}: "
                          f"torch {t_val:.4g} md {m_val:.4g} {'ms/step' if c['kind'] == 'train' else 's'}",
                          file=sys.stderr, flush=True)

    cpu = cpu_model()
    print(f"CPU: {cpu} ({os.cpu_count()} logical CPUs); microdiffusion kernels: {variant}; torch {torch.__version__}")
    print(f"torch's BLAS: {blas_kind}, {blas_path}; torch Linear 256x128 -> 128 at 1 thread: {gemm_gflops:.1f} GFLOP/s")
    print(f"medians of {args.reps} interleaved repetitions{' (--quick: smoke test, not a measurement)' if args.quick else ''}")
    print()
    header = (f"{'case':<34} {'threads':>7} {'torch':>12} {'microdiffusion':>15} {'torch/md':>9}   "
              f"{'check: torch':>12} {'md':>8}")
    print(header)
    print("-" * len(header))
    rows, warnings = [], []
    for c in cases:
        for threads in thread_counts:
            r = results[(c["letter"], threads)]
            t_med, m_med = statistics.median(r["torch"]), statistics.median(r["md"])
            t_chk, m_chk = statistics.median(r["torch_check"]), statistics.median(r["md_check"])
            ratio = t_med / m_med if m_med > 0 else float("inf")
            unit = "ms/step" if c["kind"] == "train" else "s"
            what = "loss" if c["kind"] == "train" else "rms"
            label = f"{c['letter']}. {c['name']}" + (f" ({c['steps']} steps)" if c["kind"] == "train" else "")
            if c["kind"] == "sample" and args.quick:
                label = f"{c['letter']}. sample {c['model']} {c['size']}x{c['steps']}"
            fmt = "{:.4f} ms" if c["kind"] == "train" else "{:.3f} s"
            print(f"{label:<34} {threads:>7} {fmt.format(t_med):>12} {fmt.format(m_med):>15} {ratio:>8.2f}x   "
                  f"{what} {t_chk:>7.4f} {m_chk:>8.4f}")
            lo, hi = (0.33, 3.0) if args.quick else ((0.67, 1.5) if c["kind"] == "train" else (0.8, 1.25))
            if not (lo <= t_chk / m_chk <= hi):
                warnings.append(f"{c['name']}, {threads} threads: torch {what} {t_chk:.4g} vs microdiffusion "
                                f"{m_chk:.4g}: the two setups may differ")
            rows.append(dict(case=c["name"], letter=c["letter"], kind=c["kind"], model=c["model"], threads=threads,
                             batch_or_points=c["size"], steps=c["steps"], warmup=c["warmup"], unit=unit,
                             torch=r["torch"], md=r["md"], torch_median=t_med, md_median=m_med, ratio=ratio,
                             check=what, torch_check=r["torch_check"], md_check=r["md_check"]))
    print()
    print("torch/md > 1: microdiffusion is faster. Training: time per step (mean over the timed steps), "
          "loss = mean of the last tenth; sampling: one whole sampling, rms of the samples.")
    if blas_kind.startswith("reference"):
        warnings.append("torch runs its matrix products on " + blas_path + ", apparently an unoptimised reference "
                        "BLAS: point LD_LIBRARY_PATH at an optimised libblas.so.3 (e.g. OpenBLAS's directory) "
                        "for a fair comparison")
    if blas_kind == "OpenBLAS (pthreads)" and max(thread_counts) > 1:
        warnings.append("torch's OpenBLAS runs its own pthreads beside torch's OpenMP threads, which oversubscribes "
                        "the cores at more than 1 thread: prefer OpenBLAS's OpenMP build (libopenblas0-openmp)")
    for w in warnings:
        print(f"warning: {w}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(dict(cpu=cpu, logical_cpus=os.cpu_count(), md_variant=variant, torch=torch.__version__,
                           torch_blas=blas_kind, torch_blas_path=blas_path, torch_gemm_gflops=gemm_gflops,
                           reps=args.reps, quick=args.quick, command=sys.argv, lr=LR, ema_decay=EMA_DECAY,
                           results=rows), f, indent=1)
    summary = ", ".join("{}{}t {:.2f}x".format(r["letter"], r["threads"], r["ratio"]) for r in rows)
    print(f"compare_pytorch: ok, {len(rows)} ratios (torch/md: {summary})")


if __name__ == "__main__":
    main()
