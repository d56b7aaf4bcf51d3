#!/usr/bin/env python3
"""Generate the ModelFiles test fixtures (deterministic, seeded).

Command (from the repository root):
    python3 scripts/reference/make_modelfiles_fixtures.py [path/to/SmolLM2-135M-Instruct.Q4_1.gguf]

Writes Tests/ModelFilesTests/Fixtures/ (well under 2 MB):
  quants/<TYPE>.bin + <TYPE>.f32   raw random blocks and gguf.quants.dequantize output (float32 LE)
  tiny.gguf + tiny_expected.json  a GGUF written by gguf.GGUFWriter with every metadata kind and
                                  several tensor types; tiny_<tensor>.f32 decoded reference values
  single/model.safetensors        F32/F16/BF16 tensors + __metadata__, with single_<tensor>.f32
  sharded/                        2 shards + model.safetensors.index.json
  bf16_cases.bin                  pairs of (float32 bits, torch bfloat16 bits) as uint32 LE
  writer_input.f32 + writer_py_{f32,bf16}.safetensors  Python-written files the Swift writer must match
  smollm2_expected.json           sampled decoded values of the real default model (if given/present)
Needs: numpy, gguf, safetensors, torch.
"""
import json
import os
import sys

import numpy as np
import torch
import gguf
from gguf import GGMLQuantizationType as Q
from safetensors.numpy import save_file as np_save
from safetensors.torch import save_file as torch_save

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
OUT = os.path.join(ROOT, "Tests", "ModelFilesTests", "Fixtures")
rng = np.random.default_rng(20240611)

# Byte ranges of the f16 scale fields in each block type; these are overwritten with modest
# finite halves so random blocks never decode to NaN/Inf.
F16_FIELDS = {
    Q.Q4_0: [0], Q.Q4_1: [0, 2], Q.Q5_0: [0], Q.Q5_1: [0, 2], Q.Q8_0: [0],
    Q.Q2_K: [80, 82], Q.Q3_K: [108], Q.Q4_K: [0, 2], Q.Q5_K: [0, 2], Q.Q6_K: [208],
}


def random_blocks(qtype, n_blocks):
    bs, ts = gguf.GGML_QUANT_SIZES[qtype]
    raw = rng.integers(0, 256, size=(n_blocks, ts), dtype=np.uint8)
    for off in F16_FIELDS[qtype]:
        h = (rng.standard_normal(n_blocks) * 0.05).astype(np.float16)
        raw[:, off:off + 2] = h.view(np.uint8).reshape(n_blocks, 2)
    return raw


def write_f32(path, arr):
    np.asarray(arr, dtype="<f4").tofile(path)


def quants():
    d = os.path.join(OUT, "quants")
    os.makedirs(d, exist_ok=True)
    for qtype in F16_FIELDS:
        bs, _ = gguf.GGML_QUANT_SIZES[qtype]
        n_blocks = 64 if bs == 32 else 8
        raw = random_blocks(qtype, n_blocks)
        out = gguf.quants.dequantize(raw, qtype).reshape(-1)
        assert out.size == n_blocks * bs and np.all(np.isfinite(out))
        raw.tofile(os.path.join(d, f"{qtype.name}.bin"))
        write_f32(os.path.join(d, f"{qtype.name}.f32"), out)
    # F16 and BF16: arbitrary bit patterns, NaN/Inf/subnormals included.
    for qtype, n in ((Q.F16, 4096), (Q.BF16, 4096)):
        bits = rng.integers(0, 65536, size=n, dtype=np.uint16)
        bits[:8] = [0x0000, 0x8000, 0x0001, 0x03FF, 0x7C00, 0xFC00, 0x7E00, 0x7BFF]
        raw = bits.view(np.uint8)
        out = gguf.quants.dequantize(raw, qtype).reshape(-1)
        raw.tofile(os.path.join(d, f"{qtype.name}.bin"))
        write_f32(os.path.join(d, f"{qtype.name}.f32"), out)


def tiny_gguf():
    path = os.path.join(OUT, "tiny.gguf")
    w = gguf.GGUFWriter(path, "llama")  # adds general.architecture
    V = gguf.GGUFValueType
    w.add_key_value("test.u8", 200, V.UINT8)
    w.add_key_value("test.i8", -100, V.INT8)
    w.add_key_value("test.u16", 60000, V.UINT16)
    w.add_key_value("test.i16", -30000, V.INT16)
    w.add_key_value("test.u32", 4000000000, V.UINT32)
    w.add_key_value("test.i32", -2000000000, V.INT32)
    w.add_key_value("test.u64", 2**63 + 5, V.UINT64)
    w.add_key_value("test.i64", -(2**62), V.INT64)
    w.add_key_value("test.f32", 1.5, V.FLOAT32)
    w.add_key_value("test.f64", -2.25e-10, V.FLOAT64)
    w.add_key_value("test.bool_t", True, V.BOOL)
    w.add_key_value("test.bool_f", False, V.BOOL)
    w.add_key_value("test.str", "héllo ✓ world", V.STRING)
    w.add_array("test.arr_i32", [1, -2, 3])
    w.add_key_value("test.arr_u8", [1, 2, 250], V.ARRAY, sub_type=V.UINT8)
    w.add_array("test.arr_f32", [0.5, -1.25, 3.0])
    w.add_array("test.arr_str", ["a", "", "ünï", "<|im_start|>"])
    w.add_array("test.arr_nested", [[1, 2], [3], [4, 5, 6]])
    w.add_key_value("llama.block_count", 2, V.UINT32)

    tensors = {}
    a = rng.standard_normal((3, 5)).astype(np.float32)
    w.add_tensor("t.f32", a); tensors["t.f32"] = (a.reshape(-1), "F32", [5, 3])
    b = rng.standard_normal((4, 8)).astype(np.float16)
    w.add_tensor("t.f16", b); tensors["t.f16"] = (b.astype(np.float32).reshape(-1), "F16", [8, 4])
    for qtype, rows, cols in ((Q.Q8_0, 2, 64), (Q.Q4_1, 3, 32), (Q.Q4_K, 2, 256), (Q.Q6_K, 1, 256)):
        bs, ts = gguf.GGML_QUANT_SIZES[qtype]
        raw = random_blocks(qtype, rows * cols // bs).reshape(rows, cols // bs * ts)
        name = f"t.{qtype.name.lower()}"
        w.add_tensor(name, raw, raw_dtype=qtype)
        tensors[name] = (gguf.quants.dequantize(raw, qtype).reshape(-1), qtype.name, [cols, rows])
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()

    r = gguf.GGUFReader(path)
    exp = {"tensors": [], "n_kv": int(r.fields["GGUF.kv_count"].parts[-1][0]), "version": int(r.fields["GGUF.version"].parts[-1][0])}
    for t in r.tensors:
        vals, tname, dims = tensors[t.name]
        assert [int(x) for x in t.shape] == dims, (t.name, t.shape, dims)
        write_f32(os.path.join(OUT, f"tiny_{t.name}.f32"), vals)
        exp["tensors"].append({"name": t.name, "type": tname, "dims": dims,
                               "offset": int(t.data_offset)})
    with open(os.path.join(OUT, "tiny_expected.json"), "w") as f:
        json.dump(exp, f, indent=1)


def safetensors_files():
    single = os.path.join(OUT, "single")
    os.makedirs(single, exist_ok=True)
    ts = {
        "a.f32": torch.from_numpy(rng.standard_normal((4, 6)).astype(np.float32)),
        "b.f16": torch.from_numpy(rng.standard_normal((3, 5)).astype(np.float16)),
        "c.bf16": torch.from_numpy(rng.standard_normal((2, 3, 4)).astype(np.float32)).to(torch.bfloat16),
        "d.scalar": torch.tensor(3.5, dtype=torch.float32),
        "e.i32": torch.arange(6, dtype=torch.int32),
    }
    torch_save(ts, os.path.join(single, "model.safetensors"), metadata={"format": "pt"})
    for k, v in ts.items():
        if v.dtype != torch.int32:
            write_f32(os.path.join(OUT, f"single_{k}.f32"), v.float().numpy().reshape(-1))

    sharded = os.path.join(OUT, "sharded")
    os.makedirs(sharded, exist_ok=True)
    s1 = {"model.layers.0.w": rng.standard_normal((2, 3)).astype(np.float32),
          "model.norm.weight": np.ones(3, dtype=np.float32)}
    s2 = {"lm_head.weight": rng.standard_normal((3, 2)).astype(np.float16)}
    np_save(s1, os.path.join(sharded, "model-00001-of-00002.safetensors"))
    np_save(s2, os.path.join(sharded, "model-00002-of-00002.safetensors"))
    wm = {k: "model-00001-of-00002.safetensors" for k in s1}
    wm.update({k: "model-00002-of-00002.safetensors" for k in s2})
    with open(os.path.join(sharded, "model.safetensors.index.json"), "w") as f:
        json.dump({"metadata": {"total_size": 0}, "weight_map": wm}, f, indent=1)
    for k, v in {**s1, **s2}.items():
        write_f32(os.path.join(OUT, f"sharded_{k}.f32"), v.astype(np.float32).reshape(-1))


def bf16_cases():
    specials = np.array([0.0, -0.0, 1.0, -1.0, 1.00390625, 1.005859375, 1.0078125, 3.4028235e38, -3.4028235e38,
                         np.inf, -np.inf, 1e-40, -1e-45, 65504.0, 0.1, 1 / 3], dtype=np.float32)
    special_bits = np.array([0x7FC00000, 0xFFC00000, 0x7F800001, 0xFF812345, 0x7FFFFFFF,  # NaNs
                             0x3F808000, 0x3F818000, 0x3F807FFF, 0x3F818001, 0x7F7F8000,  # ties / near-ties / overflow
                             0x00008000, 0x80018000], dtype=np.uint32)
    rnd = rng.integers(0, 2**32, size=2000, dtype=np.uint64).astype(np.uint32)
    bits = np.concatenate([specials.view(np.uint32), special_bits, rnd])
    t = torch.from_numpy(bits.view(np.float32).copy()).to(torch.bfloat16)
    out = t.view(torch.int16).numpy().view(np.uint16).astype(np.uint32)
    np.stack([bits, out], axis=1).astype("<u4").tofile(os.path.join(OUT, "bf16_cases.bin"))


def writer_parity():
    x = rng.standard_normal(2 * 3 + 5 + 4 * 2).astype(np.float32)
    x[0] = np.nan
    x[1] = 1.00390625  # a bf16 tie
    write_f32(os.path.join(OUT, "writer_input.f32"), x)
    t = torch.from_numpy(x)
    tensors = {"w.b": t[0:6].reshape(2, 3), "w.a": t[6:11].clone(), "w.c": t[11:19].reshape(4, 2)}
    meta = {"format": "pt"}  # one key: the Rust side orders several keys randomly
    torch_save({k: v.contiguous() for k, v in tensors.items()}, os.path.join(OUT, "writer_py_f32.safetensors"), metadata=meta)
    torch_save({k: v.to(torch.bfloat16).contiguous() for k, v in tensors.items()},
               os.path.join(OUT, "writer_py_bf16.safetensors"), metadata=meta)


def smollm2(path):
    if not os.path.exists(path):
        print("skipping smollm2 expectations: model not found at", path)
        return
    r = gguf.GGUFReader(path)
    by = {t.name: t for t in r.tensors}
    exp = {"tensors": {}}
    for name in ("token_embd.weight", "blk.0.attn_q.weight", "blk.29.ffn_down.weight", "output_norm.weight"):
        t = by[name]
        vals = gguf.quants.dequantize(np.asarray(t.data), t.tensor_type).reshape(-1).astype(np.float32)
        idx = sorted(set([0, 1, 31, 32, vals.size - 1] + list(rng.integers(0, vals.size, size=27))))
        exp["tensors"][name] = {
            "type": t.tensor_type.name, "dims": [int(x) for x in t.shape],
            "indices": [int(i) for i in idx],
            "bits": [int(vals.view(np.uint32)[i]) for i in idx],
            "sum": float(vals.astype(np.float64).sum()),
        }
    with open(os.path.join(OUT, "smollm2_expected.json"), "w") as f:
        json.dump(exp, f, indent=1)


if __name__ == "__main__":
    os.makedirs(OUT, exist_ok=True)
    model = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "vendor-data", "models", "SmolLM2-135M-Instruct.Q4_1.gguf")
    quants()
    tiny_gguf()
    safetensors_files()
    bf16_cases()
    writer_parity()
    smollm2(model)
    total = sum(os.path.getsize(os.path.join(dp, f)) for dp, _, fs in os.walk(OUT) for f in fs)
    print(f"fixtures written to {OUT}: {total} bytes")
