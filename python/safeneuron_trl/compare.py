"""Comparing model folders: how two trainings changed the same starting weights, and whether frozen slices moved.

    python -m safeneuron_trl.compare BASE A B [--neurons N --neuron-set S]
"""

import argparse
import glob
import json
import os

import torch
from safetensors.torch import load_file

from .masking import MLP_PARAMETER


def load_folder(folder):
    tensors = {}
    files = sorted(glob.glob(os.path.join(folder, "*.safetensors")))
    if not files:
        raise FileNotFoundError(f"{folder}: no *.safetensors files")
    for path in files:
        tensors.update(load_file(path))
    if "lm_head.weight" not in tensors and "model.embed_tokens.weight" in tensors:
        # Tied embeddings may be written once; compare the tensor that exists.
        pass
    return {k: v.float() for k, v in tensors.items()}


def update_errors(base, a, b):
    """name → ||Δa − Δb|| / ||Δb|| (Δ = folder − base), for every tensor both hold; 0 when both are unchanged."""
    errors = {}
    for name in sorted(set(base) & set(a) & set(b)):
        da, db = a[name] - base[name], b[name] - base[name]
        reference = db.norm().item()
        diff = (da - db).norm().item()
        errors[name] = diff / reference if reference > 0 else (0.0 if diff == 0 else float("inf"))
    return errors


def frozen_changes(base, other, per_layer, train_only=False):
    """Elements of frozen slices whose bits differ from the base (freeze: the neurons' slices; SN-Tune: all else)."""
    changed = 0
    checked = 0
    for name, before in base.items():
        after = other[name]
        frozen = torch.zeros_like(before, dtype=torch.bool)
        match = MLP_PARAMETER.search(name)
        if match is not None and match.group(3) == "weight":
            layer, role = int(match.group(1)), match.group(2)
            index = torch.tensor(per_layer[layer], dtype=torch.long)
            if len(index):
                if role == "down_proj":
                    frozen[:, index] = True
                else:
                    frozen[index, :] = True
            if train_only:
                frozen = ~frozen
        elif train_only:
            frozen[...] = True
        if frozen.any():
            checked += int(frozen.sum())
            changed += int((after[frozen].view(torch.int32) != before[frozen].view(torch.int32)).sum())
    return changed, checked


def main(argv=None):
    from .neurons import read_neuron_set
    p = argparse.ArgumentParser(prog="python -m safeneuron_trl.compare")
    p.add_argument("base")
    p.add_argument("a")
    p.add_argument("b")
    p.add_argument("--neurons")
    p.add_argument("--neuron-set", default="union")
    args = p.parse_args(argv)
    base, a, b = load_folder(args.base), load_folder(args.a), load_folder(args.b)
    errors = update_errors(base, a, b)
    worst = max(errors, key=errors.get)
    result = {"worst_tensor": worst, "worst_relative_error": errors[worst]}
    if args.neurons:
        _, _, per_layer = read_neuron_set(args.neurons, args.neuron_set)
        result["frozen_changed_a"] = frozen_changes(base, a, per_layer)[0]
        result["frozen_changed_b"] = frozen_changes(base, b, per_layer)[0]
    print(json.dumps(result))


if __name__ == "__main__":
    main()
