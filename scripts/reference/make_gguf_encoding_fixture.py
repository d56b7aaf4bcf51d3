#!/usr/bin/env python3
"""Writes Tests/ModelFilesTests/Fixtures/gguf_encoding.json: f32 values and their F16, BF16 and Q8_0 encodings by the
`gguf` Python package (gguf.quants.quantize), the reference for GGUFEncoding. Needs gguf, numpy.

Blocks: seeded normal values; a block whose scaled values land exactly on .5 (round-half-away); an all-zero block
(d = 0); tiny and huge magnitudes (f16 subnormals / overflow of the scale); bf16 rounding ties.
"""
import json
from pathlib import Path

import gguf
import numpy as np

rng = np.random.default_rng(7)
blocks = [rng.normal(0, 0.05, 32).astype(np.float32), rng.normal(0, 3, 32).astype(np.float32)]
half = np.array([127, -127] + [k + 0.5 for k in range(-15, 15)], dtype=np.float32)  # d = 1: x·(1/d) = x exactly
blocks += [half, np.zeros(32, np.float32), (rng.normal(0, 1, 32) * 1e-6).astype(np.float32),
           (rng.normal(0, 1, 32) * 3e4).astype(np.float32)]
ties = np.array([1.0 + 2 ** -8, 1.0 + 3 * 2 ** -8, -(1.0 + 2 ** -8), 65504.0, 7e4, 1e-8] + [0.0] * 26, dtype=np.float32)
blocks.append(ties)
x = np.concatenate(blocks).reshape(len(blocks), 32)
out = {
    "values": [float(v) for v in x.reshape(-1)],
    "bits": [int(v) for v in x.reshape(-1).view(np.uint32)],
    "rows": x.shape[0], "columns": x.shape[1],
    "f16": x.astype(np.float16).tobytes().hex(),
    "bf16": gguf.quants.quantize(x, gguf.GGMLQuantizationType.BF16).tobytes().hex(),
    "q8_0": gguf.quants.quantize(x, gguf.GGMLQuantizationType.Q8_0).tobytes().hex(),
}
path = Path(__file__).resolve().parents[2] / "Tests" / "ModelFilesTests" / "Fixtures" / "gguf_encoding.json"
path.write_text(json.dumps(out, indent=1) + "\n")
print(f"wrote {path}")
