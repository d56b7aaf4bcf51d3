#!/usr/bin/env python3
"""Does the bridge train the same under `accelerate launch --num_processes 2` (CPU, gloo) as in one process?

    python3 python/scripts/check_accelerate_ddp.py --model HF_FOLDER --pairs P --neurons N [--steps 20] [--work DIR]

One process runs --batch-size 2B; two processes run --batch-size B each (the same global batch, the same pairs per
step: the Swift order is sharded batch by batch). On a machine without GPUs the two ranks are
gloo CPU processes (see the launch below). Fails unless the launched run reports world_size 2. Prints the worst per-tensor relative difference of the two
updates (||Δ2 − Δ1|| / ||Δ1||), the largest absolute weight difference, whether the frozen slices are bit-identical
in both, and exits 1 when the worst relative difference exceeds --tolerance (default 1e-3).
"""
import argparse
import json
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--model", required=True)
    p.add_argument("--pairs", required=True)
    p.add_argument("--neurons", required=True)
    p.add_argument("--work", default="/tmp/safeneuron-trl-ddp")
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--per-process-batch", type=int, default=2)
    p.add_argument("--ablate", default="dropout:0.5")
    p.add_argument("--tolerance", type=float, default=1e-3)
    p.add_argument("--reuse", action="store_true", help="keep a run whose output folder already exists in --work")
    args = p.parse_args()
    os.makedirs(args.work, exist_ok=True)
    common = ["--model", args.model, "--pairs", args.pairs, "--neurons", args.neurons, "--ablate", args.ablate,
              "--optimizer", "adamw", "--lr", "1e-4", "--weight-decay", "0.05", "--schedule", "cosine",
              "--steps", str(args.steps), "--max-length", "64", "--seed", "7"]
    env = dict(os.environ, PYTHONPATH=os.path.dirname(HERE) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    single, double = os.path.join(args.work, "one-process"), os.path.join(args.work, "two-processes")
    if not (args.reuse and os.path.isdir(single)):
        run([sys.executable, "-m", "safeneuron_trl", "align", "--output", single,
             "--batch-size", str(2 * args.per_process_batch)] + common, env)
    # `accelerate launch --cpu` uses its simple launcher, which starts ONE process whatever --num_processes says;
    # --multi_gpu goes through torchrun, and on a machine without GPUs the two ranks come up as MULTI_CPU with gloo.
    if not (args.reuse and os.path.isdir(double)):
        run([sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
             "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
             "-m", "safeneuron_trl", "align", "--output", double, "--batch-size", str(args.per_process_batch)]
            + common, env)

    from safeneuron_trl.compare import frozen_changes, load_folder, update_errors
    from safeneuron_trl.neurons import read_neuron_set
    base, one, two = load_folder(args.model), load_folder(single), load_folder(double)
    errors = update_errors(base, two, one)
    worst = max(errors, key=errors.get)
    largest = max((one[n] - two[n]).abs().max().item() for n in errors)
    _, _, per_layer = read_neuron_set(args.neurons)
    recorded = [json.load(open(os.path.join(f, "training_args.json"))) for f in (single, double)]
    ablated = [r["ablated_steps"] for r in recorded]
    if recorded[1]["world_size"] != 2:
        print(f"FAIL: the launched run trained with world_size {recorded[1]['world_size']}, not 2")
        return 1
    result = {"worst_tensor": worst, "worst_relative_difference": errors[worst], "largest_abs_difference": largest,
              "frozen_changed_one_process": frozen_changes(base, one, per_layer)[0],
              "frozen_changed_two_processes": frozen_changes(base, two, per_layer)[0],
              "same_ablated_steps": ablated[0] == ablated[1], "ablated_steps": ablated[0]}
    print(json.dumps(result, indent=2))
    ok = (errors[worst] <= args.tolerance and result["frozen_changed_one_process"] == 0
          and result["frozen_changed_two_processes"] == 0 and result["same_ablated_steps"])
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


def run(cmd, env):
    print("+", " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True, env=env)


if __name__ == "__main__":
    sys.exit(main())
