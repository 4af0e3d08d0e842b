"""microdiffusion's denoisers as PyTorch modules, and a direct .mdw writer.

    import sys; sys.path.insert(0, "tools/python")
    from microdiffusion_torch import TutorialModel, DefaultModel, export_mdw

    model = DefaultModel(D=2, hidden=128, emb=32, blocks=3)
    ... train with eps-prediction (model(x_t, t) ~ eps, t an integer index in [0, T)) ...
    export_mdw(model, "model.mdw", T=200)                 # or:
    torch.save(model.state_dict(), "model.pt")            # microdiffusion convert model.pt --T 200 --out model.mdw

The modules compute exactly what the runtime computes (runtime/src/model.cpp):

  TutorialModel  the classic DDPM swiss-roll tutorial's ConditionalModel:
                 lin1..lin3 = ConditionalLinear (nn.Linear `lin` times the
                 row t of nn.Embedding `embed`), softplus after each, then
                 lin4 = nn.Linear(hidden, D).        -> md::preset_tutorial
  DefaultModel   sinusoids of each coordinate (scale 25) and of t (no learned
                 parameters), `input` Linear, GELU (tanh), `blocks.N.ff`
                 residual GELU blocks, `output` Linear. -> md::preset_default
  LayerStack     any list of the runtime's layers (Embed, Linear, Act,
                 Residual, TimeGate, TimeAdd, LabelAdd), named layers.N.*;
                 with a LabelAdd it is class-conditional: model(x, t, label).

t is the integer timestep index 0..T-1 that the runtime's embedding and
per-timestep tables receive. export_mdw records the schedule (linear, cosine,
scaled-linear, sigmoid; schedule_params gives the runtime's defaults) and what
the network predicts (eps, x0, v); ddpm_sample is Algorithm 2 for eps models. Only numpy, torch and the standard library are
needed; export_mdw follows weights/FORMAT.md byte for byte (CRC-32 by zlib).
"""

import math
import os
import struct
import zlib

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

# ---------------------------------------------------------------------------
# Layers
# ---------------------------------------------------------------------------

ACTIVATIONS = {  # runtime code -> PyTorch function
    "identity": (0, lambda h: h),
    "relu": (1, F.relu),
    "silu": (2, F.silu),
    "gelu_tanh": (3, lambda h: F.gelu(h, approximate="tanh")),
    "gelu_erf": (4, F.gelu),
    "softplus": (5, lambda h: F.softplus(h, beta=1, threshold=20)),
    "tanh": (6, torch.tanh),
}
KIND = {"embed": 1, "linear": 2, "activation": 3, "residual": 4, "time_gate": 5, "time_add": 6, "label_add": 7}
SCHEDULES = {"linear": 0, "cosine": 1, "scaled-linear": 2, "sigmoid": 3}
PREDICTIONS = {"eps": 0, "x0": 1, "v": 2}


def sinusoid_frequencies(dim):
    """f_j = expf(-(logf(10000) / (half - 1)) * j) in float32, as the runtime forms them
    (each step rounded to float32; exp correctly rounded)."""
    half = dim // 2
    step = np.float32(np.float32(math.log(10000.0)) / np.float32(half - 1)) if half > 1 else np.float32(0.0)
    arg = (-step * np.arange(half, dtype=np.float32)).astype(np.float32)
    return torch.from_numpy(np.exp(arg.astype(np.float64)).astype(np.float32))


def sinusoid(v, freqs):
    """tiny-diffusion's SinusoidalEmbedding of v (B,): [sin(v f), cos(v f)]."""
    a = v.unsqueeze(-1) * freqs.unsqueeze(0)
    return torch.cat((torch.sin(a), torch.cos(a)), dim=-1)


class Embed(nn.Module):
    """[x?, sincos(x_i * x_scale)..., sincos(t)]; no learned parameters (and
    nothing in the state_dict: the frequencies are non-persistent buffers)."""

    def __init__(self, D, x_raw=0, x_sin_dim=0, x_scale=1.0, t_sin_dim=0):
        super().__init__()
        assert x_sin_dim % 2 == 0 and t_sin_dim % 2 == 0
        self.D, self.x_raw, self.x_sin_dim, self.x_scale, self.t_sin_dim = D, int(x_raw), x_sin_dim, float(x_scale), t_sin_dim
        self.out_features = (D if x_raw else 0) + D * x_sin_dim + t_sin_dim
        self.register_buffer("x_freqs", sinusoid_frequencies(x_sin_dim), persistent=False)
        self.register_buffer("t_freqs", sinusoid_frequencies(t_sin_dim), persistent=False)

    def forward(self, x, t):
        parts = [x] if self.x_raw else []
        if self.x_sin_dim:
            scale = torch.tensor(self.x_scale, dtype=x.dtype)
            for i in range(self.D):
                parts.append(sinusoid(x[:, i] * scale, self.x_freqs))
        if self.t_sin_dim:
            parts.append(sinusoid(t.to(x.dtype), self.t_freqs))
        return torch.cat(parts, dim=-1)

    def mdw_layer(self, width):
        return dict(kind="embed", inp=self.D, out=self.out_features, x_raw=self.x_raw, x_sin=self.x_sin_dim,
                    t_sin=self.t_sin_dim, x_scale=self.x_scale, tensors=[])


def _linear_tensors(lin):
    W = lin.weight.detach().to(torch.float32).cpu().numpy().T  # (out, in) -> (in, out)
    b = (lin.bias.detach().to(torch.float32).cpu().numpy() if lin.bias is not None
         else np.zeros(lin.out_features, np.float32))
    return [(0, W), (1, b.reshape(1, -1))]


class Linear(nn.Module):
    def __init__(self, n_in, n_out):
        super().__init__()
        self.lin = nn.Linear(n_in, n_out)

    def forward(self, h, t):
        return self.lin(h)

    def mdw_layer(self, width):
        return dict(kind="linear", inp=width, out=self.lin.out_features, tensors=_linear_tensors(self.lin))


class Act(nn.Module):
    def __init__(self, name):
        super().__init__()
        self.name = name

    def forward(self, h, t):
        return ACTIVATIONS[self.name][1](h)

    def mdw_layer(self, width):
        return dict(kind="activation", inp=width, out=width, act=self.name, tensors=[])


class Residual(nn.Module):
    """h + act(ff(h)); the default model's blocks (ff = nn.Linear(w, w))."""

    def __init__(self, width, act="gelu_tanh"):
        super().__init__()
        self.ff = nn.Linear(width, width)
        self.act = act

    def forward(self, h, t=None):
        return h + ACTIVATIONS[self.act][1](self.ff(h))

    def mdw_layer(self, width):
        return dict(kind="residual", inp=width, out=width, act=self.act, tensors=_linear_tensors(self.ff))


class ConditionalLinear(nn.Module):
    """The DDPM tutorial's ConditionalLinear: lin(x) * embed(t). Also the runtime's time_gate."""

    def __init__(self, num_in, num_out, n_steps):
        super().__init__()
        self.num_out = num_out
        self.lin = nn.Linear(num_in, num_out)
        self.embed = nn.Embedding(n_steps, num_out)
        self.embed.weight.data.uniform_()

    def forward(self, x, t):
        out = self.lin(x)
        gamma = self.embed(t)
        return gamma.view(-1, self.num_out) * out

    def mdw_layer(self, width):
        table = self.embed.weight.detach().to(torch.float32).cpu().numpy()
        return dict(kind="time_gate", inp=width, out=self.num_out, tensors=_linear_tensors(self.lin) + [(2, table)])


TimeGate = ConditionalLinear


class TimeAdd(nn.Module):
    def __init__(self, width, n_steps):
        super().__init__()
        self.embed = nn.Embedding(n_steps, width)

    def forward(self, h, t):
        return h + self.embed(t)

    def mdw_layer(self, width):
        return dict(kind="time_add", inp=width, out=width,
                    tensors=[(2, self.embed.weight.detach().to(torch.float32).cpu().numpy())])


class LabelAdd(nn.Module):
    """h + C[label] for a class-conditional model: C has n_classes + 1 rows, the last
    one meaning "no label" (classifier-free guidance). label None: no label."""

    def __init__(self, width, n_classes):
        super().__init__()
        self.n_classes = n_classes
        self.embed = nn.Embedding(n_classes + 1, width)

    def forward(self, h, t, label=None):
        if label is None:
            label = torch.full((h.shape[0],), self.n_classes, dtype=torch.long)
        label = torch.where((label >= 0) & (label < self.n_classes), label, torch.full_like(label, self.n_classes))
        return h + self.embed(label)

    def mdw_layer(self, width):
        return dict(kind="label_add", inp=width, out=width,
                    tensors=[(2, self.embed.weight.detach().to(torch.float32).cpu().numpy())])


# ---------------------------------------------------------------------------
# Models
# ---------------------------------------------------------------------------


class TutorialModel(nn.Module):
    """The tutorial's ConditionalModel (names lin1.lin.weight ... lin4.bias)."""

    def __init__(self, n_steps=100, D=2, hidden=128):
        super().__init__()
        self.D, self.T = D, n_steps
        self.lin1 = ConditionalLinear(D, hidden, n_steps)
        self.lin2 = ConditionalLinear(hidden, hidden, n_steps)
        self.lin3 = ConditionalLinear(hidden, hidden, n_steps)
        self.lin4 = nn.Linear(hidden, D)

    def forward(self, x, y):
        x = F.softplus(self.lin1(x, y))
        x = F.softplus(self.lin2(x, y))
        x = F.softplus(self.lin3(x, y))
        return self.lin4(x)

    def mdw_layers(self):
        sp = Act("softplus")
        layers, width = [Embed(self.D, x_raw=1).mdw_layer(self.D)], self.D
        layers[0]["inp"] = self.D
        for lin in (self.lin1, self.lin2, self.lin3):
            layers.append(lin.mdw_layer(width))
            width = lin.num_out
            layers.append(sp.mdw_layer(width))
        layers.append(dict(kind="linear", inp=width, out=self.D, tensors=_linear_tensors(self.lin4)))
        return layers


class DefaultModel(nn.Module):
    """md::preset_default (names input.*, blocks.N.ff.*, output.*)."""

    def __init__(self, D=2, hidden=128, emb=32, blocks=3, x_scale=25.0):
        super().__init__()
        self.D, self.T = D, None  # T is not in the weights: give it to export_mdw / convert --T
        self.embed = Embed(D, x_raw=0, x_sin_dim=emb, x_scale=x_scale, t_sin_dim=emb)
        self.input = nn.Linear(self.embed.out_features, hidden)
        self.blocks = nn.ModuleList([Residual(hidden, "gelu_tanh") for _ in range(blocks)])
        self.output = nn.Linear(hidden, D)

    def forward(self, x, t):
        h = F.gelu(self.input(self.embed(x, t)), approximate="tanh")
        for block in self.blocks:
            h = block(h)
        return self.output(h)

    def mdw_layers(self):
        hidden = self.input.out_features
        layers = [self.embed.mdw_layer(self.D),
                  dict(kind="linear", inp=self.embed.out_features, out=hidden, tensors=_linear_tensors(self.input)),
                  Act("gelu_tanh").mdw_layer(hidden)]
        layers += [b.mdw_layer(hidden) for b in self.blocks]
        layers.append(dict(kind="linear", inp=hidden, out=self.D, tensors=_linear_tensors(self.output)))
        return layers


class LayerStack(nn.Module):
    """Any list of runtime layers; layers[0] must be an Embed. With a LabelAdd the
    model is class-conditional: forward(x, t, label)."""

    def __init__(self, D, T, layers):
        super().__init__()
        self.D, self.T = D, T
        self.layers = nn.ModuleList(layers)
        self.n_classes = max([getattr(m, "n_classes", 0) for m in layers] + [0])

    def forward(self, x, t, label=None):
        h = self.layers[0](x, t)
        for layer in self.layers[1:]:
            h = layer(h, t, label) if isinstance(layer, LabelAdd) else layer(h, t)
        return h

    def mdw_layers(self):
        out, width = [], self.D
        for layer in self.layers:
            d = layer.mdw_layer(width)
            out.append(d)
            width = d["out"]
        return out


# ---------------------------------------------------------------------------
# Schedules (runtime/include/microdiffusion/schedule.h) and ancestral sampling
# ---------------------------------------------------------------------------


def f32(v):
    return float(np.float32(v))


def schedule_params(T, kind="linear", beta_start=None, beta_end=None):
    """The ScheduleDesc `microdiffusion train/convert` would use: cosine_schedule(T), or for
    linear, scaled-linear and sigmoid linear_schedule(T)'s betas (1e-4 and 0.02 scaled by
    1000/T) unless given; every field rounded to float32 as the file stores it.
    The swiss-roll tutorial's schedule is kind="sigmoid", beta_start=1e-5, beta_end=1e-2."""
    if kind not in SCHEDULES:
        raise ValueError(f"schedule must be one of {sorted(SCHEDULES)}")
    if kind == "cosine":
        if beta_start is not None or beta_end is not None:
            raise ValueError("beta_start/beta_end do not apply to the cosine schedule")
        return dict(kind=1, T=T, beta_start=f32(1e-4), beta_end=f32(0.02), cosine_s=f32(0.008), max_beta=f32(0.999))
    scale = 1000.0 / T
    bs = f32(min(1e-4 * scale, 0.5) if beta_start is None else beta_start)
    be = f32(min(0.02 * scale, 0.999) if beta_end is None else beta_end)
    return dict(kind=SCHEDULES[kind], T=T, beta_start=bs, beta_end=be, cosine_s=f32(0.008), max_beta=f32(0.999))


def schedule_betas(p):
    """float64 betas exactly as md::schedule_beta forms them."""
    T = p["T"]
    if p["kind"] != 1:
        if T == 1:
            return np.array([p["beta_start"]], np.float64)
        start, end = p["beta_start"], p["beta_end"]
        u = np.arange(T, dtype=np.float64) / (T - 1.0)
        if p["kind"] == 2:  # scaled-linear
            return (math.sqrt(start) + (math.sqrt(end) - math.sqrt(start)) * u) ** 2
        if p["kind"] == 3:  # sigmoid
            return start + (end - start) / (1.0 + np.exp(-(-6.0 + 12.0 * u)))
        return start + (end - start) * u
    s = p["cosine_s"]

    def alpha_bar(u):
        c = math.cos((u + s) / (1.0 + s) * math.pi / 2.0)
        return c * c

    return np.array([min(1.0 - alpha_bar((k + 1) / T) / alpha_bar(k / T), p["max_beta"]) for k in range(T)])


def sampling_tables(p):
    """float32 tables as md::build_schedule stores them: recip_sqrt_alpha, eps_coef and
    sigma = sqrt(posterior_variance) (the 'small' variance)."""
    beta = schedule_betas(p)
    alpha = 1.0 - beta
    ab = np.cumprod(alpha)
    ab_prev = np.concatenate(([1.0], ab[:-1]))
    post_var = (beta * (1.0 - ab_prev) / (1.0 - ab)).astype(np.float32)
    return dict(recip_sqrt_alpha=(1.0 / np.sqrt(alpha)).astype(np.float32),
                eps_coef=(beta / np.sqrt(1.0 - ab)).astype(np.float32),
                sigma=np.sqrt(post_var).astype(np.float32))


@torch.no_grad()
def ddpm_sample(model, x_T, z, tables):
    """Ancestral sampling (Ho et al., Algorithm 2) with given noise:
    x_T (n, D); z (T, n, D), z[k] used after step k >= 1. Returns every x_k (T + 1, n, D)."""
    T = len(tables["eps_coef"])
    x = torch.as_tensor(x_T, dtype=torch.float32).clone()
    traj = [x.clone()]
    for k in range(T - 1, -1, -1):
        t = torch.full((x.shape[0],), k, dtype=torch.long)
        eps = model(x, t)
        x = tables["recip_sqrt_alpha"][k] * (x - tables["eps_coef"][k] * eps)
        if k > 0:
            x = x + tables["sigma"][k] * torch.as_tensor(z[k], dtype=torch.float32)
        traj.append(x.clone())
    return torch.stack(traj)


# ---------------------------------------------------------------------------
# The .mdw writer (weights/FORMAT.md)
# ---------------------------------------------------------------------------

ROLE_WEIGHT, ROLE_BIAS, ROLE_TABLE = 0, 1, 2


def _align(n, a=64):
    return (n + a - 1) // a * a


def mdw_bytes(layers, D, T, schedule, variance="small", is_ema=True, train_steps=0, dataset="", prediction="eps",
              n_classes=0):
    """A .mdw file for `layers` (the dicts of model.mdw_layers())."""
    if not 2 <= len(layers) <= 16:
        raise ValueError("a model has 2 to 16 layers")
    tensors = []  # (layer, role, array (rows, cols) float32)
    for i, L in enumerate(layers):
        for role, a in L["tensors"]:
            a = np.ascontiguousarray(np.asarray(a, dtype=np.float32))
            if a.ndim == 1:
                a = a.reshape(1, -1)
            if not np.all(np.isfinite(a)):
                raise ValueError(f"layer {i} holds NaN or Inf")
            tensors.append((i, role, a))
    header = _align(128 + 32 * (len(layers) + len(tensors)))
    offsets, flat = [], 0
    for _, _, a in tensors:
        offsets.append(header + 4 * flat)
        flat += _align(a.size, 16)
    total = header + 4 * flat
    buf = bytearray(total)
    name = dataset.encode()
    if len(name) > 31:
        raise ValueError("dataset name is at most 31 bytes")
    struct.pack_into("<8sHHIQIIIIII", buf, 0, b"MDIFFWTS", 1, 0, header, total, D, T, len(layers), len(tensors),
                     schedule["kind"], schedule["T"])
    struct.pack_into("<ffff", buf, 48, schedule["beta_start"], schedule["beta_end"], schedule["cosine_s"],
                     schedule["max_beta"])
    struct.pack_into("<IIII", buf, 64, PREDICTIONS[prediction], {"small": 0, "large": 1}[variance], 1 if is_ema else 0,
                     train_steps)
    buf[80:80 + len(name)] = name
    struct.pack_into("<I", buf, 112, n_classes)
    rec = 128
    for L in layers:
        act = ACTIVATIONS[L.get("act", "identity")][0]
        struct.pack_into("<IIIIIIIf", buf, rec, KIND[L["kind"]], L["inp"], L["out"], act, L.get("x_raw", 0),
                         L.get("x_sin", 0), L.get("t_sin", 0), L.get("x_scale", 1.0))
        rec += 32
    for (layer, role, a), off in zip(tensors, offsets):
        data = a.astype("<f4").tobytes()
        buf[off:off + len(data)] = data
        struct.pack_into("<IIIIIIQ", buf, rec, layer, role, 0, a.shape[0], a.shape[1], zlib.crc32(data) & 0xFFFFFFFF,
                         off)
        rec += 32
    crc = zlib.crc32(bytes(buf[0:124]))
    crc = zlib.crc32(bytes(buf[128:rec]), crc) & 0xFFFFFFFF
    struct.pack_into("<I", buf, 124, crc)
    return bytes(buf)


def export_mdw(model, path, T=None, schedule="linear", beta_start=None, beta_end=None, variance="small",
               is_ema=False, train_steps=0, dataset="", prediction="eps"):
    """Write `model` (TutorialModel, DefaultModel or LayerStack) as a .mdw file.
    T defaults to the model's (the tutorial's n_steps); the default model needs it.
    schedule: linear | cosine | scaled-linear | sigmoid (see schedule_params);
    prediction: what the network outputs, eps | x0 | v."""
    T = T if T is not None else getattr(model, "T", None)
    if T is None:
        raise ValueError("give T: this model has no per-timestep tables")
    layers = model.mdw_layers()
    for L in layers:
        for role, a in L["tensors"]:
            if role == ROLE_TABLE and L["kind"] != "label_add" and np.asarray(a).shape[0] != T:
                raise ValueError(f"a per-timestep table has {np.asarray(a).shape[0]} rows but T = {T}")
    data = mdw_bytes(layers, model.D, T, schedule_params(T, schedule, beta_start, beta_end), variance, is_ema,
                     train_steps, dataset, prediction, getattr(model, "n_classes", 0))
    tmp = f"{path}.tmp"
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, path)
    return len(data)
