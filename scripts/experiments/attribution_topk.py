#!/usr/bin/env python3
"""Writes the K neurons with the largest safety attribution of an identification folder as the `topk` set of a
neurons file, after dropping the Q neurons with the largest utility attribution (Wei et al. 2024's set difference).

    python3 scripts/experiments/attribution_topk.py FOLDER K Q OUT.json

FOLDER holds `neurons.json` and `stats.safetensors` from `safeneuron identify --score attribution --stats` (tensors
`attribution_safety` and `attribution_utility`). As in `identify`, non-finite scores are skipped and ties break by
(layer, neuron). Standard library only.
"""
import array
import json
import math
import struct
import sys

folder, k, q, out = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
neurons = json.load(open(f"{folder}/neurons.json"))
raw = open(f"{folder}/stats.safetensors", "rb").read()
header_len = struct.unpack("<Q", raw[:8])[0]
header = json.loads(raw[8:8 + header_len])


def tensor(name):
    if header.get(name, {}).get("dtype") != "F32":
        sys.exit(f"{folder}/stats.safetensors: no F32 tensor '{name}' (was identify run with --score attribution?)")
    start, end = header[name]["data_offsets"]
    v = array.array("f")
    v.frombytes(raw[8 + header_len + start:8 + header_len + end])
    if len(v) != neurons["layers"] * neurons["intermediate_size"]:
        sys.exit(f"{folder}/stats.safetensors: {name} has {len(v)} values")
    return v


def ranked(v):
    return sorted((i for i in range(len(v)) if math.isfinite(v[i])), key=lambda i: (-v[i], i))


safety = tensor("attribution_safety")
excluded = set(ranked(tensor("attribution_utility"))[:q]) if q else set()
order = [i for i in ranked(safety) if i not in excluded][:k]
width = neurons["intermediate_size"]
neurons["sets"]["topk"] = [[i // width, i % width] for i in sorted(order)]
neurons.setdefault("counts", {})["topk"] = len(order)
neurons["top_k"] = k
neurons["score"] = "attribution"
neurons["exclude_utility"] = q
json.dump(neurons, open(out, "w"))
