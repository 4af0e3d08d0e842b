#!/usr/bin/env python3
"""Golden values for tests/test_golden.cpp, computed by an independent reference.

    /usr/bin/python3 tools/golden/make_golden.py [--out tests/golden]

Nothing here imports, parses or runs the C++ code. The networks are ordinary
PyTorch modules written from the documented semantics (model.h / train.h /
schedule.h and the projects they follow: tiny-diffusion's SinusoidalEmbedding,
the DDPM tutorial's ConditionalLinear, improved-diffusion's schedules), and the
optimizer, clipping and loss are PyTorch's own (torch.optim.AdamW / Adam,
torch.nn.utils.clip_grad_norm_, F.mse_loss).

Files written (text, one entry per line, '#' lines are comments):

    name count v1 v2 ... v_count

Numbers are float32 values printed with %.9g (which round-trips a float32),
integers as integers, a few entries hold words (layer kinds, activations).

  train_<run>.txt   one training run: the model description, the config, the
                    initial parameters, three (x0, t, eps) batches, the loss,
                    prediction and every gradient of step 1 (before clipping),
                    the loss and gradient norm of each step, and the parameters
                    and EMA after three steps.
  schedules.txt     float64 tables of several noise schedules (%.12g, which is
                    far below the float32 storage the runtime compares at).
  samplers.txt      float64 trajectories of the deterministic samplers and the
                    per-step coefficients of the stochastic ones, for an affine
                    denoiser with known weights.

Tensor names follow the runtime's flat parameter layout: for each layer l in
order, "l<l>.W" (in, out) row-major (nn.Linear's (out, in) weight transposed),
"l<l>.b" (out), "l<l>.table" (T, out).
"""

import argparse
import math
import os
import sys

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

# One thread: the reference's own summation order must not depend on the host.
torch.set_num_threads(1)

# ---------------------------------------------------------------------------
# Schedules (float64 numpy). ScheduleDesc holds float32 fields, so the numbers
# a runtime schedule is built from are the float32 roundings of the constants
# (1e-4 -> 9.99999975e-05, 0.999 -> 0.999000013, 0.008 -> 0.00800000038); the
# tables below use exactly those values and otherwise stay in float64.
# ---------------------------------------------------------------------------


def f32(v):
    return float(np.float32(v))


def linear_schedule_params(T):
    """schedule.h's linear_schedule(T): Ho et al.'s 1e-4..0.02 scaled by 1000/T."""
    scale = 1000.0 / T
    return dict(kind="linear", T=T, beta_start=f32(min(1e-4 * scale, 0.5)),
                beta_end=f32(min(0.02 * scale, 0.999)), cosine_s=f32(0.008), max_beta=f32(0.999))


def cosine_schedule_params(T):
    return dict(kind="cosine", T=T, beta_start=f32(1e-4), beta_end=f32(0.02), cosine_s=f32(0.008),
                max_beta=f32(0.999))


def schedule_betas(p):
    T = p["T"]
    if p["kind"] == "linear":
        return np.linspace(p["beta_start"], p["beta_end"], T, dtype=np.float64)
    if p["kind"] == "scaled-linear":  # diffusers' "scaled_linear"
        return np.linspace(p["beta_start"] ** 0.5, p["beta_end"] ** 0.5, T, dtype=np.float64) ** 2
    if p["kind"] == "sigmoid":  # the swiss-roll tutorial's make_beta_schedule('sigmoid')
        u = np.linspace(-6, 6, T, dtype=np.float64)
        return 1.0 / (1.0 + np.exp(-u)) * (p["beta_end"] - p["beta_start"]) + p["beta_start"]
    # improved-diffusion's betas_for_alpha_bar with its cosine alpha_bar.
    s = p["cosine_s"]

    def alpha_bar(u):
        return math.cos((u + s) / (1 + s) * math.pi / 2) ** 2

    betas = []
    for i in range(T):
        t1, t2 = i / T, (i + 1) / T
        betas.append(min(1 - alpha_bar(t2) / alpha_bar(t1), p["max_beta"]))
    return np.array(betas, dtype=np.float64)


SCHEDULE_TABLES = [
    "beta", "alpha", "alpha_bar", "alpha_bar_prev", "sqrt_alpha_bar", "sqrt_one_minus_alpha_bar",
    "sqrt_recip_alpha_bar", "sqrt_recipm1_alpha_bar", "posterior_variance",
    "posterior_log_variance_clipped", "posterior_mean_coef1", "posterior_mean_coef2",
    "recip_sqrt_alpha", "eps_coef",
]


def rescale_zero_terminal_snr(betas):
    """Lin et al. 2024, Algorithm 1: shift and scale sqrt(alpha_bar) so the last is 0
    and the first is kept, then recover the betas."""
    alphas_bar_sqrt = np.sqrt(np.cumprod(1.0 - betas))
    a0, aT = alphas_bar_sqrt[0], alphas_bar_sqrt[-1]
    alphas_bar_sqrt = (alphas_bar_sqrt - aT) * a0 / (a0 - aT)
    alphas_bar = alphas_bar_sqrt ** 2
    alphas = np.concatenate([alphas_bar[0:1], alphas_bar[1:] / alphas_bar[:-1]])
    return 1.0 - alphas


def schedule_tables(p):
    """improved-diffusion's GaussianDiffusion.__init__ tables, plus the sampler's two."""
    betas = schedule_betas(p)
    if p.get("zero_terminal_snr"):
        betas = rescale_zero_terminal_snr(betas)
    return _tables_from_betas(betas)


def _tables_from_betas(betas):
    with np.errstate(divide="ignore"):  # alpha_bar_T = 0 with zero terminal SNR: 1 / sqrt(alpha_bar) is inf
        return _tables(betas)


def _tables(betas):
    alphas = 1.0 - betas
    ab = np.cumprod(alphas, axis=0)
    ab_prev = np.append(1.0, ab[:-1])
    post_var = betas * (1.0 - ab_prev) / (1.0 - ab)
    return {
        "beta": betas,
        "alpha": alphas,
        "alpha_bar": ab,
        "alpha_bar_prev": ab_prev,
        "sqrt_alpha_bar": np.sqrt(ab),
        "sqrt_one_minus_alpha_bar": np.sqrt(1.0 - ab),
        "sqrt_recip_alpha_bar": np.sqrt(1.0 / ab),
        "sqrt_recipm1_alpha_bar": np.sqrt(1.0 / ab - 1),
        "posterior_variance": post_var,
        # The variance is 0 at the first step, so its log is clipped to the next one's.
        "posterior_log_variance_clipped": np.log(np.append(post_var[1], post_var[1:])),
        "posterior_mean_coef1": betas * np.sqrt(ab_prev) / (1.0 - ab),
        "posterior_mean_coef2": (1.0 - ab_prev) * np.sqrt(alphas) / (1.0 - ab),
        # Algorithm 2: x_{t-1} = 1/sqrt(alpha) (x_t - beta/sqrt(1-ab) eps) + sigma z.
        "recip_sqrt_alpha": 1.0 / np.sqrt(alphas),
        "eps_coef": betas / np.sqrt(1.0 - ab),
    }


def schedule_rows(T):
    """Rows stored for a schedule: all of them for small T, else both ends and every 9th."""
    if T <= 100:
        return list(range(T))
    return sorted(set(range(12)) | set(range(T - 12, T)) | set(range(0, T, 9)))


# ---------------------------------------------------------------------------
# The denoisers, as plain PyTorch modules.
# ---------------------------------------------------------------------------


def sinusoidal_embedding(v, dim):
    """tiny-diffusion's SinusoidalEmbedding (scale applied by the caller)."""
    half = dim // 2
    emb = torch.log(torch.tensor([10000.0])) / (half - 1)
    emb = torch.exp(-emb * torch.arange(half))
    emb = v.unsqueeze(-1) * emb.unsqueeze(0)
    return torch.cat((torch.sin(emb), torch.cos(emb)), dim=-1)


class Embed(nn.Module):
    def __init__(self, D, x_raw, x_sin_dim, x_scale, t_sin_dim):
        super().__init__()
        self.D, self.x_raw, self.x_sin_dim, self.x_scale, self.t_sin_dim = (
            D, x_raw, x_sin_dim, x_scale, t_sin_dim)
        self.out = (D if x_raw else 0) + D * x_sin_dim + t_sin_dim

    def forward(self, x, t):
        parts = [x] if self.x_raw else []
        if self.x_sin_dim:
            for i in range(self.D):
                parts.append(sinusoidal_embedding(x[:, i] * self.x_scale, self.x_sin_dim))
        if self.t_sin_dim:
            parts.append(sinusoidal_embedding(t.float(), self.t_sin_dim))
        return torch.cat(parts, dim=-1)


ACTIVATIONS = {
    "relu": F.relu,
    "silu": F.silu,
    "gelu_tanh": lambda h: F.gelu(h, approximate="tanh"),
    "gelu_erf": lambda h: F.gelu(h),
    "softplus": lambda h: F.softplus(h, beta=1, threshold=20),
    "tanh": torch.tanh,
}


class Linear(nn.Module):
    def __init__(self, n_in, n_out):
        super().__init__()
        self.lin = nn.Linear(n_in, n_out)

    def forward(self, h, t):
        return self.lin(h)


class Act(nn.Module):
    def __init__(self, name):
        super().__init__()
        self.name = name

    def forward(self, h, t):
        return ACTIVATIONS[self.name](h)


class Residual(nn.Module):
    def __init__(self, width, act):
        super().__init__()
        self.lin = nn.Linear(width, width)
        self.act = act

    def forward(self, h, t):
        return h + ACTIVATIONS[self.act](self.lin(h))


class TimeGate(nn.Module):
    """The DDPM tutorial's ConditionalLinear: Linear(h) * G[t]."""

    def __init__(self, n_in, n_out, T):
        super().__init__()
        self.lin = nn.Linear(n_in, n_out)
        self.embed = nn.Embedding(T, n_out)

    def forward(self, h, t):
        return self.lin(h) * self.embed(t)


class TimeAdd(nn.Module):
    def __init__(self, width, T):
        super().__init__()
        self.embed = nn.Embedding(T, width)

    def forward(self, h, t):
        return h + self.embed(t)


class Denoiser(nn.Module):
    """eps_theta(x_t, t) from a layer list; `layers[i]` is runtime layer i."""

    def __init__(self, D, T, layers):
        super().__init__()
        self.D, self.T = D, T
        self.layers = nn.ModuleList(layers)

    def forward(self, x, t):
        h = x
        for i, layer in enumerate(self.layers):
            h = layer(x, t) if i == 0 else layer(h, t)
        return h

    def describe(self):
        """(kind, in, out, act, x_raw, x_sin_dim, x_scale, t_sin_dim) per layer."""
        rows, width = [], self.D
        for layer in self.layers:
            if isinstance(layer, Embed):
                rows.append(("embed", width, layer.out, "identity", layer.x_raw, layer.x_sin_dim,
                             layer.x_scale, layer.t_sin_dim))
                width = layer.out
            elif isinstance(layer, Linear):
                rows.append(("linear", width, layer.lin.out_features, "identity", 0, 0, 1.0, 0))
                width = layer.lin.out_features
            elif isinstance(layer, Act):
                rows.append(("activation", width, width, layer.name, 0, 0, 1.0, 0))
            elif isinstance(layer, Residual):
                rows.append(("residual", width, width, layer.act, 0, 0, 1.0, 0))
            elif isinstance(layer, TimeGate):
                rows.append(("time_gate", width, layer.lin.out_features, "identity", 0, 0, 1.0, 0))
                width = layer.lin.out_features
            elif isinstance(layer, TimeAdd):
                rows.append(("time_add", width, width, "identity", 0, 0, 1.0, 0))
        return rows

    def flat_tensors(self):
        """[(name, parameter, to_flat)] in the runtime's flat-block order."""
        out = []
        for i, layer in enumerate(self.layers):
            lin = getattr(layer, "lin", None)
            if lin is not None:
                out.append((f"l{i}.W", lin.weight, lambda a: a.T))  # (out, in) -> (in, out)
                out.append((f"l{i}.b", lin.bias, lambda a: a))
            emb = getattr(layer, "embed", None)
            if isinstance(emb, nn.Embedding):
                out.append((f"l{i}.table", emb.weight, lambda a: a))
        return out


def init_weights(model, rng):
    """PyTorch's default init, drawn from numpy: Linear U(+-1/sqrt(in)); gate
    tables U[0, 1) (the tutorial's ConditionalLinear); additive tables N(0, 1)."""
    with torch.no_grad():
        for layer in model.layers:
            lin = getattr(layer, "lin", None)
            if lin is not None:
                bound = 1.0 / math.sqrt(lin.in_features)
                lin.weight.copy_(torch.from_numpy(
                    rng.uniform(-bound, bound, size=tuple(lin.weight.shape)).astype(np.float32)))
                lin.bias.copy_(torch.from_numpy(
                    rng.uniform(-bound, bound, size=tuple(lin.bias.shape)).astype(np.float32)))
            if isinstance(layer, TimeGate):
                layer.embed.weight.copy_(torch.from_numpy(
                    rng.uniform(0.0, 1.0, size=tuple(layer.embed.weight.shape)).astype(np.float32)))
            if isinstance(layer, TimeAdd):
                layer.embed.weight.copy_(torch.from_numpy(
                    rng.standard_normal(size=tuple(layer.embed.weight.shape)).astype(np.float32)))


def tutorial_model(D=2, T=10, hidden=16):
    layers = [Embed(D, 1, 0, 1.0, 0)]
    width = D
    for _ in range(3):
        layers += [TimeGate(width, hidden, T), Act("softplus")]
        width = hidden
    layers.append(Linear(hidden, D))
    return Denoiser(D, T, layers)


def default_model(D=2, T=10, hidden=16, emb=8, blocks=3):
    e = Embed(D, 0, emb, 25.0, emb)
    layers = [e, Linear(e.out, hidden), Act("gelu_tanh")]
    layers += [Residual(hidden, "gelu_tanh") for _ in range(blocks)]
    layers.append(Linear(hidden, D))
    return Denoiser(D, T, layers)


def mixed_model(D=3, T=10, hidden=8):
    e = Embed(D, 1, 4, 2.0, 6)
    layers = [e, Linear(e.out, hidden), Act("silu"), TimeAdd(hidden, T), Residual(hidden, "relu"),
              Residual(hidden, "gelu_erf"), Residual(hidden, "tanh"), Linear(hidden, D)]
    return Denoiser(D, T, layers)


# ---------------------------------------------------------------------------
# Training: Ho et al. Algorithm 1 on given batches.
# ---------------------------------------------------------------------------

RUNS = [
    # name, model factory, seed, data scale, optimizer, weight decay
    dict(name="tutorial", make=tutorial_model, seed=1, data_scale=1.0, optimizer="adamw",
         weight_decay=0.01),
    dict(name="default", make=default_model, seed=2, data_scale=1.0, optimizer="adamw",
         weight_decay=0.01),
    dict(name="mixed", make=mixed_model, seed=3, data_scale=4.0, optimizer="adam",
         weight_decay=0.0),
    # The same model and data with Adam's coupled L2 (weight decay added to the gradient).
    dict(name="mixed_l2", make=mixed_model, seed=3, data_scale=4.0, optimizer="adam",
         weight_decay=0.01),
]

BATCH = 8
STEPS = 3
LR = 1e-2
BETAS = (0.9, 0.999)
ADAM_EPS = 1e-8
CLIP = 1.0
EMA_DECAY = 0.9


class Writer:
    def __init__(self):
        self.lines = []

    def comment(self, text):
        for line in text.strip("\n").split("\n"):
            self.lines.append(("# " + line).rstrip())

    def words(self, name, values):
        self.lines.append(" ".join([name, str(len(values))] + [str(v) for v in values]))

    def ints(self, name, values):
        values = [int(v) for v in np.asarray(values).reshape(-1)]
        self.words(name, values)

    def f32(self, name, values):
        arr = np.asarray(values, dtype=np.float32).reshape(-1)
        self.words(name, ["%.9g" % float(v) for v in arr])

    def f64(self, name, values, digits=12):
        arr = np.asarray(values, dtype=np.float64).reshape(-1)
        self.words(name, [("%%.%dg" % digits) % float(v) for v in arr])

    def save(self, path):
        with open(path, "w") as f:
            f.write("\n".join(self.lines) + "\n")


def flat(param, to_flat):
    return to_flat(param.detach()).contiguous().numpy().astype(np.float32)


def run_training(run):
    rng = np.random.default_rng(run["seed"])
    model = run["make"]()
    D, T = model.D, model.T
    init_weights(model, rng)
    tensors = model.flat_tensors()

    sp = linear_schedule_params(T)
    tables = schedule_tables(sp)
    # The runtime stores the tables as float32 and forms x_t in float32.
    sqrt_ab = torch.from_numpy(tables["sqrt_alpha_bar"].astype(np.float32))
    sqrt_1mab = torch.from_numpy(tables["sqrt_one_minus_alpha_bar"].astype(np.float32))

    batches = []
    for _ in range(STEPS):
        x0 = (rng.standard_normal((BATCH, D)) * run["data_scale"]).astype(np.float32)
        t = rng.integers(0, T, size=BATCH).astype(np.int64)
        eps = rng.standard_normal((BATCH, D)).astype(np.float32)
        batches.append((x0, t, eps))

    w = Writer()
    w.comment(f"""Golden training run '{run["name"]}' written by tools/golden/make_golden.py (PyTorch {torch.__version__}).
Format: name count values... ; float32 values as %.9g. Compared by tests/test_golden.cpp.
layer.<i>: kind in out act x_raw x_sin_dim x_scale t_sin_dim""")
    w.ints("config.D", [D])
    w.ints("config.T", [T])
    w.ints("config.batch", [BATCH])
    w.ints("config.steps", [STEPS])
    w.words("config.optimizer", [run["optimizer"]])
    w.words("config.lr", [repr(LR)])
    w.words("config.betas", [repr(BETAS[0]), repr(BETAS[1])])
    w.words("config.adam_eps", [repr(ADAM_EPS)])
    w.words("config.weight_decay", [repr(run["weight_decay"])])
    w.words("config.grad_clip_norm", [repr(CLIP)])
    w.words("config.ema_decay", [repr(EMA_DECAY)])
    w.words("config.schedule", ["linear", str(T), "%.9g" % sp["beta_start"], "%.9g" % sp["beta_end"]])
    desc = model.describe()
    w.ints("config.n_layers", [len(desc)])
    for i, row in enumerate(desc):
        kind, n_in, n_out, act, x_raw, x_sin, x_scale, t_sin = row
        w.words(f"layer.{i}", [kind, n_in, n_out, act, x_raw, x_sin, "%.9g" % x_scale, t_sin])
    w.f32("schedule.sqrt_alpha_bar", sqrt_ab.numpy())
    w.f32("schedule.sqrt_one_minus_alpha_bar", sqrt_1mab.numpy())

    w.comment("Initial parameters (runtime flat order; W is (in, out)).")
    for name, p, to_flat in tensors:
        w.ints(f"shape.{name}", list(to_flat(p.detach()).shape) if p.dim() == 2 else [1, p.shape[0]])
        w.f32(f"init.{name}", flat(p, to_flat))

    for k, (x0, t, eps) in enumerate(batches, start=1):
        w.f32(f"batch{k}.x0", x0)
        w.ints(f"batch{k}.t", t)
        w.f32(f"batch{k}.eps", eps)

    params = [p for _, p, _ in tensors]
    assert len(params) == len(list(model.parameters()))
    if run["optimizer"] == "adamw":
        opt = torch.optim.AdamW(params, lr=LR, betas=BETAS, eps=ADAM_EPS,
                                weight_decay=run["weight_decay"])
    else:
        opt = torch.optim.Adam(params, lr=LR, betas=BETAS, eps=ADAM_EPS,
                               weight_decay=run["weight_decay"])
    ema = [p.detach().clone() for p in params]

    losses, norms, clipped = [], [], []
    for k, (x0, t, eps) in enumerate(batches, start=1):
        x0_t, t_t, eps_t = torch.from_numpy(x0), torch.from_numpy(t), torch.from_numpy(eps)
        xt = sqrt_ab[t_t][:, None] * x0_t + sqrt_1mab[t_t][:, None] * eps_t
        opt.zero_grad(set_to_none=True)
        pred = model(xt, t_t)
        loss = F.mse_loss(pred, eps_t)
        loss.backward()
        if k == 1:
            w.comment("Step 1: x_t, the network's output, the loss and every gradient before clipping.")
            w.f32("step1.xt", xt.numpy())
            w.f32("step1.pred", pred.detach().numpy())
            for name, p, to_flat in tensors:
                w.f32(f"grad.{name}", to_flat(p.grad.detach()).contiguous().numpy())
        norm = torch.nn.utils.clip_grad_norm_(params, max_norm=CLIP)
        opt.step()
        with torch.no_grad():
            for e, p in zip(ema, params):
                e.mul_(EMA_DECAY).add_(p, alpha=1 - EMA_DECAY)
        losses.append(float(loss))
        norms.append(float(norm))
        clipped.append(int(float(norm) + 1e-6 > CLIP))

    w.comment("Per step: loss, global gradient norm before clipping, 1 where clipping scaled the gradients.")
    w.f32("steps.loss", losses)
    w.f32("steps.grad_norm", norms)
    w.ints("steps.clipped", clipped)
    w.comment(f"After {STEPS} steps: parameters and their EMA (decay {EMA_DECAY}).")
    for name, p, to_flat in tensors:
        w.f32(f"final.{name}", flat(p, to_flat))
    for (name, p, to_flat), e in zip(tensors, ema):
        w.f32(f"ema.{name}", to_flat(e).contiguous().numpy())
    return w, clipped


SCHEDULES = [
    ("linear_1000", linear_schedule_params(1000)),  # Ho et al.: 1e-4 .. 0.02 at T = 1000
    ("linear_200", linear_schedule_params(200)),    # both ends scaled by 1000/T
    ("linear_10", linear_schedule_params(10)),      # scaled, beta_end capped at 0.999
    ("cosine_1000", cosine_schedule_params(1000)),
    ("cosine_50", cosine_schedule_params(50)),
    ("scaled_linear_1000", dict(linear_schedule_params(1000), kind="scaled-linear", beta_start=f32(0.00085),
                                beta_end=f32(0.012))),
    ("sigmoid_100", dict(linear_schedule_params(100), kind="sigmoid", beta_start=f32(1e-5), beta_end=f32(1e-2))),
    ("linear_zsnr_100", dict(linear_schedule_params(100), zero_terminal_snr=1)),
    ("cosine_zsnr_50", dict(cosine_schedule_params(50), zero_terminal_snr=1)),
]


def write_schedules():
    w = Writer()
    w.comment("""Noise schedule tables in float64, written by tools/golden/make_golden.py with numpy
(improved-diffusion's formulas). Format: name count values... (%.12g).
<s>.params: kind T beta_start beta_end cosine_s max_beta -- the float32 values a ScheduleDesc holds.
<s>.k: the rows stored (0-based index k = diffusion step k + 1); each table lists those rows.""")
    exact = {}
    for name, p in SCHEDULES:
        tables = schedule_tables(p)
        rows = schedule_rows(p["T"])
        w.words(f"{name}.params", [p["kind"], p["T"]] + ["%.9g" % p[k] for k in
                                                          ("beta_start", "beta_end", "cosine_s", "max_beta")])
        w.ints(f"{name}.k", rows)
        if p.get("zero_terminal_snr"):
            w.ints(f"{name}.zero_terminal_snr", [1])
        for tname in SCHEDULE_TABLES:
            w.f64(f"{name}.{tname}", tables[tname][rows])
        exact[name] = tables
    # How far the float32 constants move the tables from the float64 ones
    # (improved-diffusion uses 1e-4, 0.02, 0.008, 0.999 in float64): a note.
    notes = []
    for name, p in SCHEDULES:
        q = dict(p)
        if p["kind"] == "linear":
            scale = 1000.0 / p["T"]
            q["beta_start"], q["beta_end"] = min(1e-4 * scale, 0.5), min(0.02 * scale, 0.999)
        q["cosine_s"], q["max_beta"] = 0.008, 0.999
        ref = schedule_tables(q)
        finite = {t: np.isfinite(ref[t]) for t in SCHEDULE_TABLES}  # inf where alpha_bar_T = 0
        worst = max(float(np.max(np.abs(exact[name][t][finite[t]] - ref[t][finite[t]]) /
                                 np.maximum(np.abs(ref[t][finite[t]]), 1e-300)))
                    for t in SCHEDULE_TABLES)
        notes.append(f"{name}: largest relative difference to the all-float64 constants {worst:.2g}")
    w.comment("\n".join(notes))
    return w



# ---------------------------------------------------------------------------
# Samplers: float64 numpy, written from the papers' update rules, for an
# affine denoiser eps(x, k) = x W + b + table[k] (the runtime's layers embed
# with x_raw only -> linear -> time_add), so every step has a closed form.
#   DDPM (Ho et al. eq. 11) on respaced steps: beta' = 1 - ab / ab_prev,
#     x' = (x - beta' / sqrt(1 - ab) eps) / sqrt(1 - beta') + sigma z,
#     sigma^2 = beta' (small: times (1 - ab_prev) / (1 - ab)), no noise at the last step.
#   DDIM (Song et al. eq. 12): x' = sqrt(ab_prev) x0 + sqrt(1 - ab_prev - s^2) eps + s z,
#     s = eta sqrt((1 - ab_prev) / (1 - ab)) sqrt(1 - ab / ab_prev).
#   DPM-Solver++(2M) (Lu et al. 2022, Alg. 2): lambda = log(alpha / sigma), h = lambda' - lambda,
#     x' = sigma'/sigma x - alpha' (e^-h - 1) D, D = x0 first, then
#     (1 + 1/(2r)) x0 - 1/(2r) x0_prev with r = h_prev / h; the last step (to ab = 1) returns x0.
#   Probability-flow ODE with Heun's method in x~ = x / sqrt(ab), sigma~ = sqrt((1 - ab) / ab),
#     dx~/dsigma~ = eps (Karras et al. 2022, Alg. 1 without churn); the last step returns x0.
# ---------------------------------------------------------------------------

SAMPLER_T = 20
SAMPLER_STEPS = [0, 3, 8, 13, 17]  # ascending; sampling runs from 17 down to 0, then to ab = 1


def sampler_model(rng, D=2):
    # Near 0.9 x (close to the optimal eps for unit Gaussian data at high noise),
    # so trajectories stay O(1) and the comparison measures the update rules.
    W = (0.9 * np.eye(D) + rng.uniform(-0.1, 0.1, size=(D, D))).astype(np.float32)
    b = rng.uniform(-0.05, 0.05, size=D).astype(np.float32)
    table = rng.uniform(-0.05, 0.05, size=(SAMPLER_T, D)).astype(np.float32)
    return W, b, table


def sampler_runs(x_T, model, ab):
    W, b, table = (np.asarray(a, dtype=np.float64) for a in model)
    eps_of = lambda x, k: x @ W + b + table[k]
    ts = SAMPLER_STEPS
    out = {}
    # Deterministic samplers: the whole trajectory from x_T.
    for name in ("ddim", "dpmpp2m", "ode"):
        x = np.asarray(x_T, dtype=np.float64)
        traj, x0_prev, h_prev = [], None, None
        for i in range(len(ts) - 1, -1, -1):
            k = ts[i]
            a_t, ab_n = ab[k], (ab[ts[i - 1]] if i > 0 else 1.0)
            eps = eps_of(x, k)
            x0 = (x - math.sqrt(1 - a_t) * eps) / math.sqrt(a_t)
            if name == "ddim":
                x = math.sqrt(ab_n) * x0 + math.sqrt(1 - ab_n) * eps
            elif i == 0:
                x = x0
            elif name == "dpmpp2m":
                al, sg, al_n, sg_n = math.sqrt(a_t), math.sqrt(1 - a_t), math.sqrt(ab_n), math.sqrt(1 - ab_n)
                h = math.log(al_n / sg_n) - math.log(al / sg)
                d = x0 if x0_prev is None else (1 + h / (2 * h_prev)) * x0 - h / (2 * h_prev) * x0_prev
                x = sg_n / sg * x - al_n * (math.exp(-h) - 1) * d
                x0_prev, h_prev = x0, h
            else:
                s_cur, s_next = math.sqrt((1 - a_t) / a_t), math.sqrt((1 - ab_n) / ab_n)
                xt = x / math.sqrt(a_t)
                pred = xt + (s_next - s_cur) * eps
                eps2 = eps_of(pred * math.sqrt(ab_n), ts[i - 1])
                x = (xt + (s_next - s_cur) * 0.5 * (eps + eps2)) * math.sqrt(ab_n)
            traj.append(x.copy())
        out[name] = np.stack(traj)
    # Stochastic samplers: per step (from the top), the coefficients of
    # x' = A x + C eps + S z (ddpm) or x' = A x0 + C eps + S z (ddim with eta).
    for name, eta in (("ddpm_small", None), ("ddpm_large", None), ("ddim_eta", 0.7)):
        A, C, S = [], [], []
        for i in range(len(ts) - 1, -1, -1):
            a_t, ab_n = ab[ts[i]], (ab[ts[i - 1]] if i > 0 else 1.0)
            if eta is None:
                beta = 1 - a_t / ab_n
                var = 0.0 if i == 0 else (beta if name == "ddpm_large" else beta * (1 - ab_n) / (1 - a_t))
                A.append(1 / math.sqrt(1 - beta))
                C.append(-beta / math.sqrt(1 - a_t) / math.sqrt(1 - beta))
                S.append(math.sqrt(var))
            else:
                sg = 0.0 if i == 0 else eta * math.sqrt((1 - ab_n) / (1 - a_t)) * math.sqrt(1 - a_t / ab_n)
                A.append(math.sqrt(ab_n))
                C.append(math.sqrt(1 - ab_n - sg * sg))
                S.append(sg)
        out[name] = (A, C, S)
    return out


def write_samplers():
    w = Writer()
    w.comment("""Sampler references in float64 (tools/golden/make_golden.py, numpy), for the affine
denoiser eps(x, k) = x W + b + table[k] on the linear schedule with T = 20 at timesteps
0 3 8 13 17. x_T: 4 rows of D = 2. <sampler>.x: x after each step, from the top
(ddim with eta 0, dpm++2m, ode/Heun). <ddpm_small|ddpm_large|ddim_eta>.A/.C/.S: per step
from the top, x' = A x + C eps + S z (ddpm) or x' = A x0 + C eps + S z (ddim, eta 0.7).""")
    rng = np.random.default_rng(20261122)
    model = sampler_model(rng)
    x_T = rng.standard_normal((4, 2)).astype(np.float32)
    ab = schedule_tables(linear_schedule_params(SAMPLER_T))["alpha_bar"]
    w.ints("T", [SAMPLER_T])
    w.ints("timesteps", SAMPLER_STEPS)
    w.f32("W", model[0])
    w.f32("b", model[1])
    w.f32("table", model[2])
    w.f32("x_T", x_T)
    runs = sampler_runs(x_T, model, ab)
    for name in ("ddim", "dpmpp2m", "ode"):
        w.f64(f"{name}.x", runs[name])
    for name in ("ddpm_small", "ddpm_large", "ddim_eta"):
        A, C, S = runs[name]
        w.f64(f"{name}.A", A)
        w.f64(f"{name}.C", C)
        w.f64(f"{name}.S", S)
    return w


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    here = os.path.dirname(os.path.abspath(__file__))
    ap.add_argument("--out", default=os.path.join(here, "..", "..", "tests", "golden"))
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)

    any_clipped, any_unclipped = False, False
    for run in RUNS:
        w, clipped = run_training(run)
        any_clipped |= any(clipped)
        any_unclipped |= not all(clipped)
        w.save(os.path.join(args.out, f"train_{run['name']}.txt"))
    # Both sides of clip_grad_norm_ must be exercised.
    if not (any_clipped and any_unclipped):
        sys.exit("golden runs must include clipped and unclipped steps; adjust data_scale")
    write_schedules().save(os.path.join(args.out, "schedules.txt"))
    write_samplers().save(os.path.join(args.out, "samplers.txt"))
    total = sum(os.path.getsize(os.path.join(args.out, f)) for f in os.listdir(args.out)
                if f.endswith(".txt"))
    print(f"wrote {len(RUNS)} training runs and schedules.txt to {os.path.normpath(args.out)} "
          f"({total / 1024:.0f} KiB)")


if __name__ == "__main__":
    main()
