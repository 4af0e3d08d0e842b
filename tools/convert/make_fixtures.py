#!/usr/bin/env python3
"""Fixtures for tests/test_convert.cpp, made by PyTorch.

    /usr/bin/python3 tools/convert/make_fixtures.py [--out tests/convert]

Trains each preset briefly (hidden 16, T 20) on a swiss roll and saves it in
every format `microdiffusion convert` reads, records probe inputs/outputs and
an ancestral sampling run with explicit noise, and writes hostile inputs:

  tutorial.pt                 torch.save(state_dict) (zip, stored members)
  tutorial_legacy.pt          torch.save(..., _use_new_zipfile_serialization=False)
  tutorial.safetensors        written by hand (F32)
  tutorial_stored.npz         np.savez (stored members, ZIP64 extra fields)
  tutorial_deflate.npz        np.savez_compressed (deflate members)
  tutorial_wrapped.pt         {"model", "ema", "optimizer", "step", "config"}
  tutorial_strided.pt         non-contiguous tensors and storage offsets
  tutorial_f64.safetensors, tutorial_f16.safetensors, tutorial_bf16.safetensors,
  tutorial_f64.npz, tutorial_f16.npz (deflate), tutorial_f16.pt,
  tutorial_bf16_legacy.pt, tutorial_f64_legacy.pt       other dtypes
  tutorial_export.mdw         tools/python export_mdw
  default.pt, default_legacy.pt, default.safetensors, default_stored.npz,
  default_deflate.npz, default_wrapped_legacy.pt, default_export.mdw
  custom.pt + custom.map      a class-conditional MLP of other layers, mapped by a mapping file
  conditional_export.mdw      export_mdw of a conditional LayerStack (sigmoid schedule, v-prediction)
  evil_global.pt              zip; data.pkl = GLOBAL os.system + REDUCE
  evil_stack_global.pt        legacy; STACK_GLOBAL os.system + REDUCE
  evil_reduce.pt              a real state_dict plus an object whose __reduce__ is os.system
  inflate_cases.bin           raw DEFLATE streams from zlib (every block type)
  expected.txt                probes, outputs, sampling noise and trajectories

Each evil file is checked here to really run its payload under plain
torch.load (in a subprocess, which creates and we then delete the marker).

expected.txt: one entry per line, "name count v1 ... v_count" (%.9g floats).
"""

import argparse
import collections
import io
import json
import math
import os
import pickle
import struct
import subprocess
import sys
import zipfile
import zlib

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "python"))
import microdiffusion_torch as mt  # noqa: E402

torch.set_num_threads(1)
T = 20
HIDDEN = 16
MARKER = "/tmp/microdiffusion_convert_pwned"


def swiss_roll(n, rng):
    u = 1.5 * math.pi * (1 + 2 * rng.random(n))
    return (np.stack([u * np.cos(u), u * np.sin(u)], 1) / 5.0).astype(np.float32)


def train(model, rng, steps=300, lr=5e-3, ema_decay=0.9):
    """Brief eps-prediction training with Adam; returns the optimizer and an EMA state_dict."""
    p = mt.schedule_params(T)
    ab = torch.tensor(np.cumprod(1.0 - mt.schedule_betas(p)), dtype=torch.float32)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    ema = {k: v.detach().clone() for k, v in model.state_dict().items()}
    D = model.D
    for _ in range(steps):
        x0 = torch.from_numpy(swiss_roll(64, rng)) if D == 2 else torch.from_numpy(
            rng.standard_normal((64, D)).astype(np.float32))
        t = torch.from_numpy(rng.integers(0, T, 64))
        eps = torch.from_numpy(rng.standard_normal((64, D)).astype(np.float32))
        a = ab[t].unsqueeze(1)
        xt = a.sqrt() * x0 + (1 - a).sqrt() * eps
        if getattr(model, "n_classes", 0):
            label = torch.from_numpy(rng.integers(0, model.n_classes + 1, 64))
            loss = F.mse_loss(model(xt, t, label), eps)
        else:
            loss = F.mse_loss(model(xt, t), eps)
        opt.zero_grad()
        loss.backward()
        opt.step()
        with torch.no_grad():
            for k, v in model.state_dict().items():
                ema[k].mul_(ema_decay).add_(v, alpha=1 - ema_decay)
    sd = model.state_dict()
    ema_sd = collections.OrderedDict((k, ema[k]) for k in sd)
    return opt, ema_sd


class Expected:
    def __init__(self):
        self.lines = ["# tests/convert/expected.txt: made by tools/convert/make_fixtures.py"]

    def f32(self, name, a):
        a = np.asarray(a, np.float32).ravel()
        self.lines.append(f"{name} {a.size} " + " ".join(f"{v:.9g}" for v in a))

    def ints(self, name, a):
        a = np.asarray(a).ravel()
        self.lines.append(f"{name} {a.size} " + " ".join(str(int(v)) for v in a))

    def save(self, path):
        with open(path, "w") as f:
            f.write("\n".join(self.lines) + "\n")


def probe(model, ex, name, rng_probe, D):
    n = 32
    t = np.arange(n) % T
    x = (rng_probe.standard_normal((n, D)) * 1.5).astype(np.float32)
    with torch.no_grad():
        eps = model(torch.from_numpy(x), torch.from_numpy(t)).numpy()
    ex.ints(f"{name}.t", t)
    ex.f32(f"{name}.x", x)
    ex.f32(f"{name}.eps", eps)
    return t, x


def labelled_probe(model, ex, name, rng_probe, D):
    n = 32
    t = np.arange(n) % T
    label = np.arange(n) % (model.n_classes + 1)  # n_classes: no label
    x = (rng_probe.standard_normal((n, D)) * 1.5).astype(np.float32)
    with torch.no_grad():
        eps = model(torch.from_numpy(x), torch.from_numpy(t), torch.from_numpy(label)).numpy()
    ex.ints(f"{name}.t", t)
    ex.ints(f"{name}.label", label)
    ex.f32(f"{name}.x", x)
    ex.f32(f"{name}.eps", eps)


def probe_outputs(model, t, x):
    with torch.no_grad():
        return model(torch.from_numpy(x), torch.from_numpy(t)).numpy()


# linear_schedule(20) ends at beta = 0.999 (1/sqrt(alpha) ~ 32 per step): with the default
# model's 25x sinusoids that makes trajectories chaotic, so a 1-ulp difference in the first
# step grows to O(1). The sampling comparison uses a well-conditioned schedule instead.
SAMPLE_BETA_END = 0.2


def sample_run(model, ex, name, rng, D, n=16):
    tables = mt.sampling_tables(mt.schedule_params(T, "linear", beta_end=SAMPLE_BETA_END))
    x_T = rng.standard_normal((n, D)).astype(np.float32)
    z = rng.standard_normal((T, n, D)).astype(np.float32)
    traj = mt.ddpm_sample(model, x_T, z, tables).numpy()
    ex.f32(f"{name}.sample.beta_end", [SAMPLE_BETA_END])
    ex.f32(f"{name}.sample.xT", x_T)
    ex.f32(f"{name}.sample.z", z)
    ex.f32(f"{name}.sample.traj", traj)  # (T + 1, n, D): x_T, x_{T-1}, ..., x_0


# ---------------------------------------------------------------------------
# Writers
# ---------------------------------------------------------------------------


def write_safetensors(path, sd, dtype="F32"):
    conv = {"F32": lambda v: v.float().numpy().astype("<f4").tobytes(),
            "F64": lambda v: v.double().numpy().astype("<f8").tobytes(),
            "F16": lambda v: v.half().numpy().astype("<f2").tobytes(),
            "BF16": lambda v: v.bfloat16().view(torch.int16).numpy().astype("<i2").tobytes()}[dtype]
    header, blobs, off = {"__metadata__": {"format": "pt", "made_by": "make_fixtures.py"}}, [], 0
    for k, v in sd.items():
        b = conv(v.detach().contiguous())
        header[k] = {"dtype": dtype, "shape": list(v.shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))


def npz(path, sd, compressed, dtype=np.float32):
    arrays = {k: v.detach().double().numpy().astype(dtype) for k, v in sd.items()}
    (np.savez_compressed if compressed else np.savez)(path, **arrays)


def rounded(sd, dtype):
    return collections.OrderedDict((k, v.to(dtype).float()) for k, v in sd.items())


def strided(sd):
    """Same values; lin4.weight transposed in memory, lin1.lin.bias at a storage
    offset, lin2.lin.weight every other column of a wider storage."""
    out = collections.OrderedDict((k, v.clone()) for k, v in sd.items())
    out["lin4.weight"] = sd["lin4.weight"].t().contiguous().t()
    b = sd["lin1.lin.bias"]
    big = torch.cat([torch.full((5,), 7.0), b, torch.full((3,), -7.0)])
    out["lin1.lin.bias"] = big[5:5 + b.numel()]
    w = sd["lin2.lin.weight"]
    wide = torch.full((w.shape[0], 2 * w.shape[1]), 3.0)
    wide[:, ::2] = w
    out["lin2.lin.weight"] = wide[:, ::2]
    assert not out["lin4.weight"].is_contiguous() and not out["lin2.lin.weight"].is_contiguous()
    assert out["lin1.lin.bias"].storage_offset() == 5
    return out


# ---------------------------------------------------------------------------
# Hostile files
# ---------------------------------------------------------------------------


def payload_cmd():
    return f"touch {MARKER}"


def evil_files(out):
    cmd = payload_cmd().encode()
    # zip with GLOBAL 'os system', BINUNICODE cmd, TUPLE1, REDUCE, STOP
    pkl = b"\x80\x02cos\nsystem\nq\x00X" + struct.pack("<I", len(cmd)) + cmd + b"\x85q\x01Rq\x02."
    with zipfile.ZipFile(os.path.join(out, "evil_global.pt"), "w", zipfile.ZIP_STORED) as z:
        z.writestr("evil_global/data.pkl", pkl)
        z.writestr("evil_global/version", "3\n")
    # legacy: magic, protocol, sys_info, then a protocol-4 pickle using STACK_GLOBAL
    head = (pickle.dumps(0x1950a86a20f9469cfc6c, protocol=2) + pickle.dumps(1001, protocol=2) +
            pickle.dumps(dict(protocol_version=1001, little_endian=True, type_sizes=dict(short=2, int=4, long=4)),
                         protocol=2))
    body = (b"\x80\x04\x8c\x02os\x94\x8c\x06system\x94\x93\x94\x8c" + bytes([len(cmd)]) + cmd +
            b"\x94\x85\x94R\x94.")
    with open(os.path.join(out, "evil_stack_global.pt"), "wb") as f:
        f.write(head + body + pickle.dumps([], protocol=2))

    # A genuine checkpoint with a booby-trapped entry, written by torch.save itself.
    class Trap:
        def __reduce__(self):
            return (os.system, (payload_cmd(),))

    sd = mt.TutorialModel(T, 2, 4).state_dict()
    torch.save({"model": sd, "note": Trap()}, os.path.join(out, "evil_reduce.pt"))
    # Prove each file is malicious: plain torch.load runs the payload.
    for name in ("evil_global.pt", "evil_stack_global.pt", "evil_reduce.pt"):
        if os.path.exists(MARKER):
            os.remove(MARKER)
        subprocess.run([sys.executable, "-c", "import sys, torch; torch.load(sys.argv[1])",
                        os.path.join(out, name)], check=False, capture_output=True)
        assert os.path.exists(MARKER), f"{name}: torch.load did not run the payload"
        os.remove(MARKER)


def inflate_cases(path):
    rng = np.random.default_rng(7)
    text = (b"microdiffusion trains and samples DDPM models with small MLP denoisers. " * 40 +
            bytes(rng.integers(97, 123, 2000, dtype=np.uint8)))
    rand = bytes(rng.integers(0, 256, 3000, dtype=np.uint8))
    far = bytes(rng.integers(0, 256, 600, dtype=np.uint8))
    far_stream = far + b"\x00" * 26000 + far + text[:500]

    def deflate(data, level=6, strategy=zlib.Z_DEFAULT_STRATEGY, chunks=1, mem=8):
        c = zlib.compressobj(level, zlib.DEFLATED, -15, mem, strategy)
        out, step = b"", max(1, len(data) // chunks)
        for i in range(0, len(data), step):
            out += c.compress(data[i:i + step])
            if chunks > 1:
                out += c.flush(zlib.Z_FULL_FLUSH)
        return out + c.flush()

    cases = [
        ("dynamic", text, deflate(text)),
        ("fixed", text, deflate(text, strategy=zlib.Z_FIXED)),
        ("stored_blocks", text, deflate(text, level=0, chunks=4)),
        ("huffman_only", text, deflate(text, strategy=zlib.Z_HUFFMAN_ONLY)),
        ("rle", text, deflate(text, strategy=zlib.Z_RLE)),
        ("random", rand, deflate(rand, level=9)),
        ("zeros", b"\x00" * 60000, deflate(b"\x00" * 60000, level=9)),
        ("far_distance", far_stream, deflate(far_stream, level=9)),
        ("flushed_mixed", text + rand, deflate(text + rand, level=1, chunks=5)),
        ("empty", b"", deflate(b"")),
        ("one_byte", b"A", deflate(b"A")),
    ]
    with open(path, "wb") as f:
        f.write(b"MDINFL01" + struct.pack("<I", len(cases)))
        for label, raw, comp in cases:
            assert zlib.decompress(comp, -15) == raw
            lb = label.encode()
            f.write(struct.pack("<B", len(lb)) + lb + struct.pack("<III", len(raw), zlib.crc32(raw) & 0xFFFFFFFF,
                                                                    len(comp)) + comp)


# ---------------------------------------------------------------------------
# The custom network (mapping-file fixture)
# ---------------------------------------------------------------------------


class Custom(nn.Module):
    """D = 3, 3 classes: embed(x_raw, x_sin 4 at scale 2, t_sin 6) -> in-projection stored
    (in, out) -> silu -> + temb[t] -> + cemb[label] -> relu residual -> gelu(erf) residual
    -> gated Linear -> tanh -> Linear without bias. Plus a buffer the mapping ignores."""

    def __init__(self):
        super().__init__()
        self.D, self.T = 3, T
        self.embed = mt.Embed(3, x_raw=1, x_sin_dim=4, x_scale=2.0, t_sin_dim=6)
        self.net = nn.Module()
        self.net.w_in = nn.Parameter(torch.randn(self.embed.out_features, HIDDEN) * 0.3)  # (in, out)
        self.net.b_in = nn.Parameter(torch.randn(HIDDEN) * 0.1)
        self.net.temb = nn.Embedding(T, HIDDEN)
        self.n_classes = 3
        self.net.cemb = nn.Embedding(self.n_classes + 1, HIDDEN)  # last row: no label
        self.net.res = nn.ModuleList([nn.Linear(HIDDEN, HIDDEN), nn.Linear(HIDDEN, HIDDEN)])
        self.net.gate = mt.ConditionalLinear(HIDDEN, 12, T)
        self.net.head = nn.Linear(12, 3, bias=False)
        self.net.register_buffer("steps_seen", torch.tensor([0.0]))

    def forward(self, x, t, label=None):
        h = F.silu(self.embed(x, t) @ self.net.w_in + self.net.b_in)
        h = h + self.net.temb(t)
        if label is None:
            label = torch.full_like(t, self.n_classes)
        h = h + self.net.cemb(label)
        h = h + F.relu(self.net.res[0](h))
        h = h + F.gelu(self.net.res[1](h))
        h = torch.tanh(self.net.gate(h, t))
        return self.net.head(h)


CUSTOM_MAP = """\
# tests/convert/custom.map: the Custom network of tools/convert/make_fixtures.py
D 3
ignore net.steps_seen
embed x_raw=1 x_sin=4 x_scale=2 t_sin=6
linear weight=net.w_in bias=net.b_in layout=in_out
activation silu
time_add table=net.temb.weight
label_add table=net.cemb.weight   # 4 rows: 3 classes + "no label"
residual relu weight=net.res.0.weight bias=net.res.0.bias
residual gelu weight=net.res.1.weight bias=net.res.1.bias   # nn.GELU's erf form
time_gate weight=net.gate.lin.weight bias=net.gate.lin.bias table=net.gate.embed.weight
activation tanh
linear weight=net.head.weight bias=none
"""


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.path.join(HERE, "..", "..", "tests", "convert"))
    args = ap.parse_args()
    out = os.path.abspath(args.out)
    os.makedirs(out, exist_ok=True)
    P = lambda name: os.path.join(out, name)  # noqa: E731
    ex = Expected()
    ex.ints("T", [T])

    # ---- tutorial -------------------------------------------------------------
    torch.manual_seed(1)
    rng = np.random.default_rng(1)
    tut = mt.TutorialModel(T, 2, HIDDEN)
    opt, ema_sd = train(tut, rng)
    sd = tut.state_dict()
    t, x = probe(tut, ex, "tutorial", np.random.default_rng(11), 2)
    sample_run(tut, ex, "tutorial", np.random.default_rng(12), 2)
    ema_model = mt.TutorialModel(T, 2, HIDDEN)
    ema_model.load_state_dict(ema_sd)
    ex.f32("tutorial_ema.eps", probe_outputs(ema_model, t, x))
    for dt, name in ((torch.float16, "f16"), (torch.bfloat16, "bf16")):
        m = mt.TutorialModel(T, 2, HIDDEN)
        m.load_state_dict(rounded(sd, dt))
        ex.f32(f"tutorial_{name}.eps", probe_outputs(m, t, x))

    torch.save(sd, P("tutorial.pt"))
    torch.save(sd, P("tutorial_legacy.pt"), _use_new_zipfile_serialization=False)
    write_safetensors(P("tutorial.safetensors"), sd)
    npz(P("tutorial_stored.npz"), sd, False)
    npz(P("tutorial_deflate.npz"), sd, True)
    torch.save({"model": sd, "ema": ema_sd, "optimizer": opt.state_dict(), "step": 300,
                "config": {"lr": 5e-3, "betas": (0.9, 0.999), "arch": "tutorial", "T": T, "note": None}},
               P("tutorial_wrapped.pt"))
    torch.save(strided(sd), P("tutorial_strided.pt"))
    write_safetensors(P("tutorial_f64.safetensors"), sd, "F64")
    write_safetensors(P("tutorial_f16.safetensors"), sd, "F16")
    write_safetensors(P("tutorial_bf16.safetensors"), sd, "BF16")
    npz(P("tutorial_f64.npz"), sd, False, np.float64)
    npz(P("tutorial_f16.npz"), sd, True, np.float16)
    torch.save(collections.OrderedDict((k, v.half()) for k, v in sd.items()), P("tutorial_f16.pt"))
    torch.save(collections.OrderedDict((k, v.bfloat16()) for k, v in sd.items()), P("tutorial_bf16_legacy.pt"),
               _use_new_zipfile_serialization=False)
    torch.save(collections.OrderedDict((k, v.double()) for k, v in sd.items()), P("tutorial_f64_legacy.pt"),
               _use_new_zipfile_serialization=False)
    mt.export_mdw(tut, P("tutorial_export.mdw"), dataset="swissroll", is_ema=False)

    # ---- default --------------------------------------------------------------
    torch.manual_seed(2)
    rng = np.random.default_rng(2)
    dm = mt.DefaultModel(D=2, hidden=HIDDEN, emb=8, blocks=3)
    opt, ema_sd = train(dm, rng)
    sd = dm.state_dict()
    assert not any("freqs" in k for k in sd), "the embedding must not be in the state_dict"
    t, x = probe(dm, ex, "default", np.random.default_rng(21), 2)
    sample_run(dm, ex, "default", np.random.default_rng(22), 2)
    ema_model = mt.DefaultModel(D=2, hidden=HIDDEN, emb=8, blocks=3)
    ema_model.load_state_dict(ema_sd)
    ex.f32("default_ema.eps", probe_outputs(ema_model, t, x))
    torch.save(sd, P("default.pt"))
    torch.save(sd, P("default_legacy.pt"), _use_new_zipfile_serialization=False)
    write_safetensors(P("default.safetensors"), sd)
    npz(P("default_stored.npz"), sd, False)
    npz(P("default_deflate.npz"), sd, True)
    torch.save({"model": sd, "ema": ema_sd, "optimizer": opt.state_dict(), "step": 300},
               P("default_wrapped_legacy.pt"), _use_new_zipfile_serialization=False)
    mt.export_mdw(dm, P("default_export.mdw"), T=T, dataset="swissroll", is_ema=False)

    # ---- custom (mapping file) -------------------------------------------------
    torch.manual_seed(3)
    cm = Custom()
    with torch.no_grad():
        cm.net.temb.weight.mul_(0.3)
    rng = np.random.default_rng(3)
    train(cm, rng, steps=100)
    labelled_probe(cm, ex, "custom", np.random.default_rng(31), 3)
    torch.save(cm.state_dict(), P("custom.pt"))
    with open(P("custom.map"), "w") as f:
        f.write(CUSTOM_MAP)

    # ---- a conditional LayerStack, exported with sigmoid schedule, v-prediction ---
    torch.manual_seed(4)
    cond = mt.LayerStack(2, T, [mt.Embed(2, x_raw=1, x_sin_dim=4, x_scale=3.0, t_sin_dim=4), mt.Linear(14, 8),
                                mt.Act("silu"), mt.LabelAdd(8, 3), mt.TimeAdd(8, T), mt.Residual(8, "tanh"),
                                mt.Linear(8, 2)])
    labelled_probe(cond, ex, "conditional", np.random.default_rng(41), 2)
    mt.export_mdw(cond, P("conditional_export.mdw"), schedule="sigmoid", beta_start=1e-5, beta_end=1e-2,
                  prediction="v", variance="large", dataset="moons")

    evil_files(out)
    inflate_cases(P("inflate_cases.bin"))
    ex.save(P("expected.txt"))
    total = sum(os.path.getsize(P(f)) for f in os.listdir(out))
    print(f"wrote {len(os.listdir(out))} files, {total} bytes, to {out}")


if __name__ == "__main__":
    main()
