"""Reading `neurons.json` (format `safeneuron.neurons/1`, written by `safeneuron identify`).

The checks are those of the Swift reader (Sources/SafetyNeurons/NeuronsFile.swift): every error names the file
and the field, so a bad file fails before any model is loaded."""

import json
import os

FORMAT_ID = "safeneuron.neurons/1"
SET_NAMES = ("es", "sas", "union", "topk")
POOLS = ("mean", "last", "max")
SCORES = ("d", "attribution")


class NeuronsFileError(ValueError):
    def __init__(self, path, reason):
        super().__init__(f"{path}: {reason}")
        self.path, self.reason = path, reason


def _is_int(v):
    return isinstance(v, int) and not isinstance(v, bool)


def validate(data, path):
    """Raises NeuronsFileError unless `data` (the parsed JSON) is a valid neurons file."""
    def bad(why):
        return NeuronsFileError(path, why)

    if not isinstance(data, dict):
        raise bad("the top level is not a JSON object")
    for key in ("format", "model", "pool", "tau_es", "tau_sas", "layers", "intermediate_size", "harmful",
                "harmless", "sets", "counts"):
        if key not in data:
            raise bad(f"missing key '{key}'")
    if data["format"] != FORMAT_ID:
        raise bad(f"format is '{data['format']}', expected '{FORMAT_ID}'")
    if data["pool"] not in POOLS:
        raise bad(f"pool is '{data['pool']}', expected one of {', '.join(repr(p) for p in POOLS)}")
    if data.get("score") is not None and data["score"] not in SCORES:
        raise bad(f"score is '{data['score']}', expected one of {', '.join(repr(s) for s in SCORES)}")
    for key in ("layers", "intermediate_size", "harmful", "harmless"):
        if not _is_int(data[key]):
            raise bad(f"field '{key}': expected an integer, found {data[key]!r}")
    for key in ("exclude_utility", "safety_pairs", "utility_pairs", "rounds"):
        v = data.get(key)
        if v is not None and (not _is_int(v) or v < 0):
            raise bad(f"field '{key}' = {v!r} is not a non-negative integer")
    layers, width = data["layers"], data["intermediate_size"]
    if not 0 < layers <= 1 << 16:
        raise bad(f"layers = {layers} is out of range")
    if not 0 < width <= 1 << 24:
        raise bad(f"intermediate_size = {width} is out of range")
    if data["harmful"] < 0 or data["harmless"] < 0:
        raise bad("harmful/harmless prompt counts must not be negative")
    sets, counts = data["sets"], data["counts"]
    if not isinstance(sets, dict):
        raise bad("field 'sets': expected an object")
    if not isinstance(counts, dict):
        raise bad("field 'counts': expected an object")

    def check_set(name):
        if name not in sets:
            raise bad(f"missing key 'sets.{name}'")
        pairs = sets[name]
        if not isinstance(pairs, list):
            raise bad(f"field 'sets.{name}': expected a list of [layer, neuron] pairs")
        prev = None
        for i, p in enumerate(pairs):
            if not isinstance(p, list) or len(p) != 2 or not all(_is_int(x) for x in p):
                raise bad(f"sets.{name}[{i}] = {p!r} is not a [layer, neuron] pair of integers")
            layer, neuron = p
            if not (0 <= layer < layers and 0 <= neuron < width):
                raise bad(f"sets.{name}[{i}] = [{layer}, {neuron}] is outside {layers} layers × {width} neurons")
            if prev is not None and not (prev < (layer, neuron)):
                raise bad(f"sets.{name}[{i}] = [{layer}, {neuron}] is not after [{prev[0]}, {prev[1]}]; pairs must be "
                          "sorted by layer, then neuron, without duplicates")
            prev = (layer, neuron)
        if counts.get(name) is None:
            raise bad(f"counts.{name} is missing")
        if counts[name] != len(pairs):
            raise bad(f"counts.{name} = {counts[name]} but sets.{name} holds {len(pairs)} pairs")

    for name in ("es", "sas", "union"):
        check_set(name)
    expected = sorted({tuple(p) for p in sets["es"]} | {tuple(p) for p in sets["sas"]})
    if expected != [tuple(p) for p in sets["union"]]:
        raise bad("sets.union is not the union of sets.es and sets.sas")
    top_k, topk = data.get("top_k"), sets.get("topk")
    if top_k is None and topk is None:
        if counts.get("topk") is not None:
            raise bad("counts.topk is present but there is no topk set")
    elif top_k is None:
        raise bad("sets.topk is present but top_k is missing")
    elif topk is None:
        raise bad("top_k is present but sets.topk is missing")
    else:
        if not _is_int(top_k) or top_k < 0:
            raise bad(f"top_k = {top_k!r} is not a non-negative integer")
        check_set("topk")
        if len(topk) > top_k:
            raise bad(f"sets.topk holds {len(topk)} pairs, more than top_k = {top_k}")


def read_neuron_set(path, set_name="union"):
    """The named set as (layers, intermediate_size, per_layer) with per_layer[l] the sorted neuron indices."""
    if set_name not in SET_NAMES:
        raise NeuronsFileError(path, f"unknown neuron set '{set_name}'; expected one of {', '.join(SET_NAMES)}")
    try:
        size = os.path.getsize(path)
    except OSError as e:
        raise NeuronsFileError(path, f"cannot read: {e.strerror}") from None
    if size > 1 << 30:
        raise NeuronsFileError(path, f"file size {size} bytes exceeds the {1 << 30}-byte limit")
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except json.JSONDecodeError as e:
        raise NeuronsFileError(path, f"not valid JSON: {e.msg} at line {e.lineno} column {e.colno}") from None
    except UnicodeDecodeError:
        raise NeuronsFileError(path, "not UTF-8 text") from None
    validate(data, path)
    if data["sets"].get(set_name) is None:
        raise NeuronsFileError(path, "this neurons file has no 'topk' set (it was written without top_k)")
    per_layer = [[] for _ in range(data["layers"])]
    for layer, neuron in data["sets"][set_name]:
        per_layer[layer].append(neuron)
    return data["layers"], data["intermediate_size"], per_layer
