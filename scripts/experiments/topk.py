#!/usr/bin/env python3
"""Writes the K neurons with the largest Cohen's d of an identification folder as the `topk` set of a neurons file.

    python3 scripts/experiments/topk.py FOLDER K OUT.json

FOLDER holds `neurons.json` and `stats.safetensors` from `safeneuron identify --stats`. As in `identify --top-k`,
non-finite d is skipped and ties break by (layer, neuron). Standard library only.
"""
import array
import json
import math
import struct
import sys

folder, k, out = sys.argv[1], int(sys.argv[2]), sys.argv[3]
neurons = json.load(open(f"{folder}/neurons.json"))
raw = open(f"{folder}/stats.safetensors", "rb").read()
header_len = struct.unpack("<Q", raw[:8])[0]
header = json.loads(raw[8:8 + header_len])
if header.get("d", {}).get("dtype") != "F32":
    sys.exit(f"{folder}/stats.safetensors: no F32 tensor 'd'")
start, end = header["d"]["data_offsets"]
d = array.array("f")
d.frombytes(raw[8 + header_len + start:8 + header_len + end])
width = neurons["intermediate_size"]
if len(d) != neurons["layers"] * width:
    sys.exit(f"{folder}/stats.safetensors: d has {len(d)} values, expected {neurons['layers']} x {width}")
order = sorted((i for i in range(len(d)) if math.isfinite(d[i])), key=lambda i: (-d[i], i))[:k]
neurons["sets"]["topk"] = [[i // width, i % width] for i in sorted(order)]
neurons.setdefault("counts", {})["topk"] = len(order)
neurons["top_k"] = k
json.dump(neurons, open(out, "w"))
