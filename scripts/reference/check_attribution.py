#!/usr/bin/env python3
"""Checks `safeneuron identify --score attribution` against a PyTorch activation x gradient hook reference.

    swift build -c release --product safeneuron
    python3 scripts/reference/check_attribution.py --pairs runs/default/pairs.jsonl
    python3 scripts/reference/check_attribution.py --pairs P.jsonl --model M.gguf --top-k 150 450 --exclude-utility 0 2300

Needs torch, transformers, gguf, numpy. Work files go to --workdir (default: a temporary folder).

Reference (f32 forward and backward in PyTorch, scores summed in float64): the GGUF is loaded by transformers
(gguf_file=..., f32). Each pair is tokenised the TRL conversational way: prompt = apply_chat_template([user],
add_generation_prompt=True), full = apply_chat_template([user, assistant]); the completion is what follows the prompt.
A forward pre-hook on every layer's mlp.down_proj keeps its input a = silu(gate)*up and its gradient.
- safety score of a neuron: a * d(margin)/da summed over every position of the chosen and of the rejected sequence,
  margin = log p(chosen) - log p(rejected) (sums over completion tokens), averaged over the safety pairs;
- utility score: |sum over positions of a * d log p(chosen)/da| on the general pairs, averaged over them.
Rows with "kind": "general" are general pairs; every other row is a safety pair (as `identify` reads them).
Top-k: the k largest safety scores after dropping the Q largest utility scores (ties by layer, neuron).

The same pairs go through `safeneuron identify --score attribution --top-k K --exclude-utility Q --stats S`; the script
prints the Jaccard index of every top-k set, the correlation of the raw scores and their largest relative error.
It passes when every Jaccard index is >= --min-jaccard (0.95). Exit status 1 when a check fails.
"""
import argparse, json, sys, tempfile, time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from check_identify import (DEFAULT_BINARY, DEFAULT_MODEL, HARMLESS, chat_ids, down_proj_modules, finish, ids_of,
                            jaccard, load_model, read_safetensors, run)


def read_pairs(path, limit):
    safety, general = [], []
    for line in Path(path).read_text().splitlines():
        if not line.strip():
            continue
        row = json.loads(line)
        (general if row.get("kind") == "general" else safety).append(row)
    if limit:
        safety, general = safety[:limit], general[:limit]
    return safety, general


def pair_ids(tok, prompt, completion):
    p = chat_ids(tok, prompt)
    full = ids_of(tok.apply_chat_template([{"role": "user", "content": prompt},
                                           {"role": "assistant", "content": completion}], tokenize=True))
    assert full[:len(p)] == p and len(full) > len(p), "completion does not extend the prompt"
    return full, len(p)


def completion_logprob(model, ids, start, sign):
    """sign x the sum of the completion tokens' log-probabilities of one sequence (no padding)."""
    logits = model(torch.tensor([ids])).logits[0].float()
    logp = torch.log_softmax(logits[start - 1:-1], dim=-1)
    target = torch.tensor(ids[start:])
    return sign * logp.gather(1, target[:, None]).sum()


def reference_scores(model, tok, safety, general):
    mods = down_proj_modules(model)
    L, I = len(mods), mods[0].in_features
    kept = {}

    def hook(layer):
        def f(_module, args):
            a = args[0]
            a.retain_grad()
            kept[layer] = a
        return f

    handles = [m.register_forward_pre_hook(hook(l)) for l, m in enumerate(mods)]
    for p in model.parameters():
        p.requires_grad_(False)
    model.model.embed_tokens.weight.requires_grad_(True)  # something upstream must need a gradient

    def per_sequence(ids, start, sign):
        kept.clear()
        completion_logprob(model, ids, start, sign).backward()
        out = np.zeros((L, I))
        for l in range(L):
            a = kept[l]
            out[l] = (a[0] * a.grad[0]).sum(dim=0).detach().double().numpy()
        model.zero_grad(set_to_none=True)
        return out

    try:
        s = np.zeros((L, I))
        for row in safety:
            c, cs = pair_ids(tok, row["prompt"], row["chosen"])
            r, rs = pair_ids(tok, row["prompt"], row["rejected"])
            assert cs == rs
            s += per_sequence(c, cs, 1.0) + per_sequence(r, rs, -1.0)
        s /= len(safety)
        u = None
        if general:
            u = np.zeros((L, I))
            for row in general:
                c, cs = pair_ids(tok, row["prompt"], row["chosen"])
                u += np.abs(per_sequence(c, cs, 1.0))
            u /= len(general)
    finally:
        for h in handles:
            h.remove()
    return s, u


def ranked(v):
    flat = v.reshape(-1)
    idx = [i for i in range(flat.size) if np.isfinite(flat[i])]
    idx.sort(key=lambda i: (-flat[i], i))
    return idx


def top_k(safety, utility, k, q):
    I = safety.shape[1]
    excluded = set(ranked(utility)[:q]) if q else set()
    picked = [i for i in ranked(safety) if i not in excluded][:k]
    return {(i // I, i % I) for i in picked}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=str(DEFAULT_MODEL))
    ap.add_argument("--pairs", required=True, help="JSONL rows {prompt, chosen, rejected, kind?}")
    ap.add_argument("--limit", type=int, default=0, help="use at most this many safety and general pairs")
    ap.add_argument("--top-k", type=int, nargs="+", default=[150, 450])
    ap.add_argument("--exclude-utility", type=int, nargs="+", default=[0, 2300])
    ap.add_argument("--min-jaccard", type=float, default=0.95)
    ap.add_argument("--binary", default=str(DEFAULT_BINARY))
    ap.add_argument("--workdir")
    args = ap.parse_args()
    work = Path(args.workdir or tempfile.mkdtemp(prefix="check-attribution-"))
    work.mkdir(parents=True, exist_ok=True)

    safety, general = read_pairs(args.pairs, args.limit)
    pairs_file = work / "pairs.jsonl"
    pairs_file.write_text("".join(json.dumps(r) + "\n" for r in safety + general))
    # identify also computes ES/SAS; a few prompts keep that part cheap.
    (work / "harmful.txt").write_text("\n".join(r["prompt"].replace("\n", " ") for r in safety[:8]) + "\n")
    (work / "harmless.txt").write_text("\n".join(HARMLESS[:8]) + "\n")
    print(f"{len(safety)} safety and {len(general)} general pairs from {args.pairs}")

    tok, model = load_model(args.model)
    t = time.time()
    ref_s, ref_u = reference_scores(model, tok, safety, general)
    print(f"reference attribution: {time.time() - t:.1f} s")

    failures = []
    printed_scores = False
    for q in args.exclude_utility:
        if q and ref_u is None:
            print(f"skipping --exclude-utility {q}: no general pairs")
            continue
        for k in args.top_k:
            out = work / f"neurons_k{k}_q{q}.json"
            stats = work / f"stats_k{k}_q{q}.safetensors"
            cmd = [args.binary, "identify", "--model", model_path, "--harmful", work / "harmful.txt",
                   "--harmless", work / "harmless.txt", "--score", "attribution", "--pairs", pairs_file,
                   "--top-k", k, "--exclude-utility", q, "--output", out, "--stats", stats]
            _, secs = run(cmd)
            nf = json.loads(out.read_text())
            ours = {tuple(p) for p in nf["sets"]["topk"]}
            ref = top_k(ref_s, ref_u, k, q)
            j = jaccard(ours, ref)
            ok = j >= args.min_jaccard and nf.get("score") == "attribution"
            print(f"top-{k}, utility top-{q} excluded: Jaccard {j:.4f} ({len(ours & ref)} shared of {len(ref)}) "
                  f"{'ok' if ok else 'FAIL'}  [{secs:.0f} s]")
            if not ok:
                failures.append(f"top-{k} (exclude {q}): Jaccard {j:.4f} < {args.min_jaccard}")
            if not printed_scores:
                printed_scores = True
                st = read_safetensors(stats)
                for name, ref_v in [("attribution_safety", ref_s), ("attribution_utility", ref_u)]:
                    if ref_v is None:
                        continue
                    v = st[name]
                    corr = np.corrcoef(v.reshape(-1), ref_v.reshape(-1))[0, 1]
                    scale = np.abs(ref_v).max()
                    err = np.abs(v - ref_v).max() / scale
                    print(f"  {name}: correlation {corr:.6f}, max |diff| / max |ref| = {err:.2e}")
    return finish(failures)


if __name__ == "__main__":
    main()
