#!/usr/bin/env python3
"""Seeds for fuzz_checkpoint and fuzz_inflate (tests/fuzz/corpus/{checkpoint,inflate}/).

    python3 tests/fuzz/make_checkpoint_seeds.py

Standard library only (no torch, no numpy): it writes tiny but valid files in
every format `microdiffusion convert` reads, laid out as torch.save, numpy and
safetensors lay them out, so the fuzzer starts from inputs that parse and
convert, not from noise. The models are the presets at toy sizes (D 2,
hidden 2, T 2 for the tutorial model; D 1, emb 2, hidden 2 for the default
model), a few hundred bytes to 3 KB each. A few small fixtures written by the
real PyTorch and numpy (tests/convert/, tools/convert/make_fixtures.py) are
copied next to them. Output is deterministic (fixed zip timestamps), so
re-running it changes no committed file. The regress_* seeds are not made
here: they are fuzzer findings, kept as found.
"""

import collections
import io
import json
import os
import pickle
import shutil
import struct
import sys
import types
import zipfile
import zlib

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, "..", ".."))
CK = os.path.join(HERE, "corpus", "checkpoint")
INF = os.path.join(HERE, "corpus", "inflate")

# Real files from tests/convert/ (made by torch / numpy), the small ones.
COPIED = ["default.pt", "default_legacy.pt", "tutorial_bf16.safetensors", "tutorial_f16.npz", "evil_global.pt",
          "evil_stack_global.pt"]

# ---------------------------------------------------------------------------
# Stand-ins for the torch objects pickle has to name (nothing is imported)
# ---------------------------------------------------------------------------

torch_mod = types.ModuleType("torch")
utils_mod = types.ModuleType("torch._utils")
torch_mod._utils = utils_mod
sys.modules["torch"] = torch_mod  # stand-ins: nothing real is imported or needed
sys.modules["torch._utils"] = utils_mod


def _named(mod, name, obj):
    obj.__module__ = mod.__name__
    obj.__qualname__ = name
    obj.__name__ = name
    setattr(mod, name, obj)
    return obj


STORAGE_TYPES = {}
for _n, _fmt in (("FloatStorage", "f"), ("DoubleStorage", "d"), ("HalfStorage", "e"), ("BFloat16Storage", "bf16"),
                 ("LongStorage", "q")):
    STORAGE_TYPES[_fmt] = _named(torch_mod, _n, type(_n, (), {}))


def _rebuild_tensor_v2(*args):
    raise RuntimeError("stand-in only")


_named(utils_mod, "_rebuild_tensor_v2", _rebuild_tensor_v2)


def _encode(values, fmt, big=False):
    order = ">" if big else "<"
    if fmt == "bf16":  # the upper half of the float32
        return b"".join(struct.pack(order + "H", struct.unpack("<I", struct.pack("<f", v))[0] >> 16) for v in values)
    return struct.pack(order + fmt * len(values), *values)


class Storage:
    def __init__(self, key, values, fmt="f"):
        self.key, self.values, self.fmt = key, list(values), fmt

    def data(self, big=False):
        return _encode(self.values, self.fmt, big)


class Tensor:
    def __init__(self, storage, shape, stride=None, offset=0):
        if stride is None:
            stride, s = [], 1
            for d in reversed(shape):
                stride.insert(0, s)
                s *= d
        self.storage, self.shape, self.stride, self.offset = storage, tuple(shape), tuple(stride), offset

    def __reduce_ex__(self, protocol):
        return (_rebuild_tensor_v2,
                (self.storage, self.offset, self.shape, self.stride, False, collections.OrderedDict()))


class _Pickler(pickle.Pickler):
    def __init__(self, f, legacy):
        super().__init__(f, protocol=2)
        self.legacy, self.storages = legacy, collections.OrderedDict()

    def persistent_id(self, obj):
        if not isinstance(obj, Storage):
            return None
        self.storages[obj.key] = obj
        pid = ("storage", STORAGE_TYPES[obj.fmt], obj.key, "cpu", len(obj.values))
        return pid + (None,) if self.legacy else pid


def values(n, seed):
    """Deterministic small floats."""
    return [((seed * 31 + i * 17) % 23 - 11) / 16.0 for i in range(n)]


def state_dict(arch, fmt="f"):
    """The preset's tensors: one storage per tensor, named "0", "1", ... as torch.save does."""
    if arch == "tutorial":  # D 2, hidden 2, T 2
        shapes = []
        for i in (1, 2, 3):
            shapes += [(f"lin{i}.lin.weight", (2, 2)), (f"lin{i}.lin.bias", (2,)), (f"lin{i}.embed.weight", (2, 2))]
        shapes += [("lin4.weight", (2, 2)), ("lin4.bias", (2,))]
    else:  # default: D 1, emb 2 (input width emb x (D + 1) = 4), hidden 2, one block
        shapes = [("input.weight", (2, 4)), ("input.bias", (2,)), ("blocks.0.ff.weight", (2, 2)),
                  ("blocks.0.ff.bias", (2,)), ("output.weight", (1, 2)), ("output.bias", (1,))]
    sd = collections.OrderedDict()
    for k, (name, shape) in enumerate(shapes):
        n = 1
        for d in shape:
            n *= d
        sd[name] = Tensor(Storage(str(k), values(n, k), fmt), shape)
    sd._metadata = collections.OrderedDict([("", {"version": 1})])
    return sd


def _zinfo(name, method):
    zi = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
    zi.compress_type = method
    return zi


def torch_zip(obj, prefix="archive", method=zipfile.ZIP_STORED, big=False):
    """torch.save (PyTorch >= 1.6): <prefix>/data.pkl, byteorder, data/<key>, version."""
    f = io.BytesIO()
    p = _Pickler(f, legacy=False)
    p.dump(obj)
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as z:
        z.writestr(_zinfo(f"{prefix}/data.pkl", method), f.getvalue())
        z.writestr(_zinfo(f"{prefix}/byteorder", zipfile.ZIP_STORED), "big" if big else "little")
        for key, s in p.storages.items():
            z.writestr(_zinfo(f"{prefix}/data/{key}", method), s.data(big))
        z.writestr(_zinfo(f"{prefix}/version", zipfile.ZIP_STORED), "3\n")
    return out.getvalue()


def torch_legacy(obj, big=False):
    """torch.save(..., _use_new_zipfile_serialization=False)."""
    head = (pickle.dumps(0x1950a86a20f9469cfc6c, protocol=2) + pickle.dumps(1001, protocol=2) +
            pickle.dumps({"protocol_version": 1001, "little_endian": not big,
                          "type_sizes": {"short": 2, "int": 4, "long": 4}}, protocol=2))
    f = io.BytesIO()
    p = _Pickler(f, legacy=True)
    p.dump(obj)
    keys = sorted(p.storages)
    body = f.getvalue() + pickle.dumps(keys, protocol=2)
    for k in keys:
        s = p.storages[k]
        body += struct.pack(">Q" if big else "<Q", len(s.values)) + s.data(big)
    return head + body


SAFE_DTYPES = {"F32": "f", "F64": "d", "F16": "e", "BF16": "bf16"}


def safetensors(sd, dtype="F32", metadata=True):
    header, blobs, off = {}, [], 0
    if metadata:
        header["__metadata__"] = {"format": "pt"}
    for name, t in sd.items():
        b = _encode(t.storage.values, SAFE_DTYPES[dtype])
        header[name] = {"dtype": dtype, "shape": list(t.shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    return struct.pack("<Q", len(h)) + h + b"".join(blobs)


def npy(vals, shape, descr="<f4", fortran=False, version=1):
    fmt = {"f4": "f", "f8": "d", "f2": "e", "i8": "q"}[descr[1:]]
    shape_txt = "(" + "".join(f"{d}, " for d in shape)[:-2] + ("," if len(shape) == 1 else "") + ")"
    if not shape:
        shape_txt = "()"
    h = f"{{'descr': '{descr}', 'fortran_order': {fortran}, 'shape': {shape_txt}, }}"
    pre = 10 if version == 1 else 12
    h += " " * ((64 - (pre + len(h) + 1) % 64) % 64) + "\n"
    hb = h.encode("latin1")
    lenb = struct.pack("<H", len(hb)) if version == 1 else struct.pack("<I", len(hb))
    data = struct.pack(("<" if descr[0] != ">" else ">") + fmt * len(vals), *vals)
    return b"\x93NUMPY" + bytes([version, 0]) + lenb + hb + data


def npz(sd, compressed, zip64=False):
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as z:
        for name, t in sd.items():
            zi = _zinfo(name + ".npy", zipfile.ZIP_DEFLATED if compressed else zipfile.ZIP_STORED)
            with z.open(zi, "w", force_zip64=zip64) as m:
                m.write(npy(t.storage.values, t.shape))
    return out.getvalue()


def checkpoint_seeds():
    seeds = {}
    tut, dft = state_dict("tutorial"), state_dict("default")
    seeds["tutorial_zip.pt"] = torch_zip(tut)
    seeds["tutorial_zip_deflate.pt"] = torch_zip(tut, prefix="tutorial", method=zipfile.ZIP_DEFLATED)
    seeds["tutorial_zip_bigendian.pt"] = torch_zip(tut, big=True)
    seeds["tutorial_legacy.pt"] = torch_legacy(tut)
    seeds["default_zip_f16.pt"] = torch_zip(state_dict("default", "e"))
    seeds["default_legacy_bf16_bigendian.pt"] = torch_legacy(state_dict("default", "bf16"), big=True)
    # Wrapped: the model and an EMA copy sharing storages (tied tensors), a step counter.
    wrapped = collections.OrderedDict([("model", dft), ("ema", collections.OrderedDict(dft.items())),
                                       ("step", 7), ("config", {"lr": 0.001, "name": "moons"})])
    seeds["default_wrapped_zip.pt"] = torch_zip(wrapped)
    # Views: one storage holding several tensors, at offsets, transposed and every other column.
    big = Storage("big", values(40, 3))
    strided = collections.OrderedDict(state_dict("default").items())
    strided["input.weight"] = Tensor(big, (2, 4), (1, 2), 3)   # transposed view at offset 3
    strided["blocks.0.ff.weight"] = Tensor(big, (2, 2), (8, 2), 12)  # every other column
    strided["input.bias"] = Tensor(big, (2,), (1,), 30)
    seeds["default_strided_legacy.pt"] = torch_legacy(strided)
    seeds["tutorial.safetensors"] = safetensors(tut)
    seeds["default_bf16.safetensors"] = safetensors(dft, "BF16", metadata=False)
    seeds["default_f64.safetensors"] = safetensors(dft, "F64")
    seeds["tutorial_stored_zip64.npz"] = npz(tut, compressed=False, zip64=True)
    seeds["default_deflate.npz"] = npz(dft, compressed=True)
    seeds["matrix.npy"] = npy(values(6, 1), (2, 3))
    seeds["fortran_f8.npy"] = npy(values(6, 2), (3, 2), "<f8", fortran=True)
    seeds["bigendian_v2.npy"] = npy(values(4, 3), (4,), ">f4", version=2)
    seeds["half_v3.npy"] = npy(values(2, 4), (1, 2), "<f2", version=3)
    seeds["scalar.npy"] = npy([1.5], ())
    seeds["empty.npy"] = npy([], (0, 3))
    return seeds


def inflate_seeds():
    text = b"microdiffusion trains and samples DDPM models with small MLP denoisers. " * 4
    rnd, x = bytearray(), 12345
    for _ in range(300):
        x = (x * 1103515245 + 12345) & 0x7FFFFFFF
        rnd.append(x >> 16 & 0xFF)

    def deflate(data, level=6, strategy=zlib.Z_DEFAULT_STRATEGY, chunks=1):
        c = zlib.compressobj(level, zlib.DEFLATED, -15, 8, strategy)
        out, step = b"", max(1, len(data) // chunks)
        for i in range(0, len(data), step):
            out += c.compress(data[i:i + step])
            if chunks > 1:
                out += c.flush(zlib.Z_FULL_FLUSH)
        return out + c.flush()

    seeds = {
        "empty.deflate": deflate(b""),
        "one_byte.deflate": deflate(b"A"),
        "stored.deflate": deflate(text[:100], level=0),
        "fixed.deflate": deflate(text, strategy=zlib.Z_FIXED),
        "dynamic.deflate": deflate(text, level=9),
        "huffman_only.deflate": deflate(text, strategy=zlib.Z_HUFFMAN_ONLY),
        "rle_zeros.deflate": deflate(b"\x00" * 3000, strategy=zlib.Z_RLE),
        "random.deflate": deflate(bytes(rnd), level=9),
        "flushed_mixed.deflate": deflate(text + bytes(rnd), level=1, chunks=3),
        # A float32 tensor as np.savez_compressed stores it.
        "npy_member.deflate": deflate(npy(values(24, 5), (4, 6))),
    }
    for v in seeds.values():
        zlib.decompress(v, -15)
    return seeds


def write(directory, seeds):
    os.makedirs(directory, exist_ok=True)
    total = 0
    for name, data in sorted(seeds.items()):
        assert len(data) < 20000, name
        with open(os.path.join(directory, name), "wb") as f:
            f.write(data)
        total += len(data)
    return total


def main():
    seeds = checkpoint_seeds()
    for name in COPIED:
        with open(os.path.join(ROOT, "tests", "convert", name), "rb") as f:
            seeds["real_" + name] = f.read()
    n1 = write(CK, seeds)
    n2 = write(INF, inflate_seeds())
    print(f"checkpoint: {len(seeds)} seeds, {n1} bytes; inflate: {n2} bytes")


if __name__ == "__main__":
    main()
