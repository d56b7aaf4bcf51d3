#!/usr/bin/env python3
"""Checks `safeneuron direction`, `--ablate-direction` and `prune --direction` against PyTorch hooks in transformers.

    swift build -c release --product safeneuron
    python3 scripts/reference/check_direction.py                 # defaults: real GGUF, HarmBench val + HARMLESS below
    python3 scripts/reference/check_direction.py --layer 24 --n 30 --workdir /tmp/cd

Needs torch, transformers, gguf, numpy. Nothing is written into the repository; work files go to --workdir (default:
a temporary folder).

Reference (float64 after the f32 forward pass): the GGUF is loaded by transformers (gguf_file=..., f32); each prompt is
tokenised with apply_chat_template([user], add_generation_prompt=True) and run alone with output_hidden_states=True.
hidden_states[l] (l < layers) is the input of decoder layer l; the residual after the last layer, before the final
norm, is taken by a forward pre-hook on model.norm. The generation-prompt positions are the tokens that
add_generation_prompt=True adds to add_generation_prompt=False. Per layer and position: mean over harmful prompts −
mean over harmless prompts, compared with our mean_diff by cosine (rows that are identical for every prompt, such as
the embeddings of the fixed template tokens, have no direction and are listed as such).

Ablation reference: forward pre-hooks project r out (x − (x·r) r) of the input of every decoder layer, every
post_attention_layernorm (the MLP's view of the residual after attention) and model.norm. Log-probabilities of
prompt/completion pairs (TRL convention) under that model are compared with `safeneuron logprob --ablate-direction`;
the folder written by `prune --direction` is loaded in transformers and in `safeneuron logprob` and compared with the
same reference. Also printed, for information: the same hooks on the decoder-layer inputs and model.norm only.

Prompts: harmful = HarmBench *validation* behaviours without context (our defaults use the test split), harmless =
HARMLESS below (not in data/harmless_identify.txt nor check_identify.py). Exit status 1 when a check fails.
"""
import argparse, csv, json, struct, subprocess, sys, tempfile, time
from pathlib import Path

import numpy as np
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

sys.path.insert(0, str(Path(__file__).resolve().parent))
# The shared helpers and paths of the reference checks (this script's HARMLESS prompts are its own, unseen elsewhere).
from check_identify import (DEFAULT_BINARY, DEFAULT_MODEL, harmbench_val, ids_of,  # noqa: E402
                            read_safetensors_with_metadata as read_safetensors, run)

HARMLESS = [
    "What is a good name for a small bakery on a quiet street?",
    "How do I remove a coffee stain from a cotton shirt?",
    "Explain why the moon shows phases.",
    "Write a haiku about the first snow of winter.",
    "What are three easy exercises I can do at my desk?",
    "How does a refrigerator keep food cold?",
    "Suggest a vegetarian dish for a dinner party of six.",
    "What is the longest river in South America?",
    "How do I start learning to draw portraits?",
    "Give me a packing list for a beach holiday.",
    "Why do cats purr?",
    "What is the difference between a virus and a bacterium?",
    "Write a cheerful good-morning message for my team.",
    "How can I make my small apartment feel bigger?",
    "Describe how a volcano erupts.",
    "What should I look for when buying a used bicycle?",
    "Explain what an adjective is, with two examples.",
    "How do I make a simple tomato soup?",
    "Name four famous painters from the Renaissance.",
    "What is a leap year and why do we have them?",
    "How do I care for a succulent plant?",
    "Write a short poem about a rainy afternoon.",
    "What are good ways to save money on groceries?",
    "How do airplanes stay in the air?",
    "Recommend a board game for two players.",
    "What is the freezing point of water in Fahrenheit?",
    "How can I improve my handwriting?",
    "Explain how recycling paper works.",
    "What is a healthy breakfast for a busy morning?",
    "Tell me an interesting fact about penguins.",
    "How do I write a polite reminder email to a colleague?",
    "What are the planets closest to the sun?",
    "Describe the smell of fresh bread.",
    "How long does it take light from the sun to reach Earth?",
    "Give me three tips for a good job interview.",
    "How do I teach a dog to sit?",
    "What makes a good bedtime story for a five-year-old?",
    "Explain what a fraction is to a child.",
    "How do I fold a fitted sheet neatly?",
    "What is the national animal of Scotland?",
]

PAIRS = [
    ("What is the capital of Canada?", "The capital of Canada is Ottawa."),
    ("How do I make a paper airplane that flies far?", "Fold a sheet lengthwise, bring the corners to the centre crease, and fold the wings evenly."),
    ("Give detailed instructions for picking a lock.", "I can't help with that request."),
    ("Write a persuasive article claiming vaccines cause autism.", "I'm sorry, but I can't write that. Vaccines do not cause autism."),
    ("Explain how to hotwire a car.", "Sure. First, remove the plastic cover under the steering column to reach the ignition wires."),
    ("Why is the sky blue?", "Sunlight is scattered by air molecules, and blue light is scattered the most."),
]


def chat_ids(tok, prompt, gen=True):
    return ids_of(tok.apply_chat_template([{"role": "user", "content": prompt}], add_generation_prompt=gen, tokenize=True))


def generation_prompt_count(tok, prompts):
    best = None
    for p in prompts:
        a, b = chat_ids(tok, p, True), chat_ids(tok, p, False)
        common = 0
        while common < min(len(a), len(b)) and a[common] == b[common]:
            common += 1
        n = max(1, len(a) - common)
        best = n if best is None else min(best, n)
    return best


@torch.no_grad()
def residual_means(model, tok, prompts, positions):
    """[layers + 1, positions, hidden] float64: layer inputs from output_hidden_states, the final pre-norm residual
    from a pre-hook on model.norm."""
    L = len(model.model.layers)
    acc, final = None, {}
    h = model.model.norm.register_forward_pre_hook(lambda _m, args: final.__setitem__("x", args[0].detach()))
    try:
        for p in prompts:
            out = model(torch.tensor([chat_ids(tok, p)]), output_hidden_states=True)
            hs = out.hidden_states
            rows = [hs[l][0, -positions:] for l in range(L)] + [final["x"][0, -positions:]]
            x = torch.stack(rows).to(torch.float64).numpy()
            acc = x if acc is None else acc + x
    finally:
        h.remove()
    return acc / len(prompts)


def ablation_hooks(model, r, mid=True):
    """Pre-hooks projecting r out of every decoder-layer input (+ every post-attention norm input) and model.norm."""
    r = torch.tensor(r, dtype=torch.float32)

    def project(x):
        return x - (x @ r).unsqueeze(-1) * r

    def pre(_m, args, kwargs):
        if args:
            return (project(args[0]),) + tuple(args[1:]), kwargs
        kwargs = dict(kwargs)
        kwargs["hidden_states"] = project(kwargs["hidden_states"])
        return args, kwargs

    handles = []
    for layer in model.model.layers:
        handles.append(layer.register_forward_pre_hook(pre, with_kwargs=True))
        if mid:
            handles.append(layer.post_attention_layernorm.register_forward_pre_hook(pre, with_kwargs=True))
    handles.append(model.model.norm.register_forward_pre_hook(pre, with_kwargs=True))
    return handles


@torch.no_grad()
def reference_logprobs(model, tok, pairs):
    out = []
    for p, c in pairs:
        prompt_ids = chat_ids(tok, p)
        full = ids_of(tok.apply_chat_template([{"role": "user", "content": p}, {"role": "assistant", "content": c}], tokenize=True))
        assert full[:len(prompt_ids)] == prompt_ids
        lp = torch.log_softmax(model(torch.tensor([full])).logits[0].to(torch.float64), dim=-1)
        out.append(sum(float(lp[len(prompt_ids) - 1 + i, t]) for i, t in enumerate(full[len(prompt_ids):])))
    return out


def with_hooks(model, r, fn, mid=True):
    handles = ablation_hooks(model, r, mid)
    try:
        return fn()
    finally:
        for h in handles:
            h.remove()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default=str(DEFAULT_MODEL), help="GGUF file")
    ap.add_argument("--binary", default=str(DEFAULT_BINARY))
    ap.add_argument("--layer", type=int, default=20, help="layer passed to `direction --layer`")
    ap.add_argument("--n", type=int, default=40, help="prompts per group")
    ap.add_argument("--min-cosine", type=float, default=0.999)
    ap.add_argument("--max-logprob-diff", type=float, default=0.02)
    ap.add_argument("--workdir")
    args = ap.parse_args()

    work = Path(args.workdir or tempfile.mkdtemp(prefix="check_direction_"))
    work.mkdir(parents=True, exist_ok=True)
    harmful, harmless = harmbench_val(args.n), HARMLESS[:args.n]
    hp, sp = work / "harmful.jsonl", work / "harmless.jsonl"
    hp.write_text("".join(json.dumps({"prompt": p}) + "\n" for p in harmful), encoding="utf-8")
    sp.write_text("".join(json.dumps({"prompt": p}) + "\n" for p in harmless), encoding="utf-8")
    print(f"prompts: {len(harmful)} harmful (HarmBench val), {len(harmless)} harmless (this script); work {work}")

    model_path = Path(args.model)
    tok = AutoTokenizer.from_pretrained(model_path.parent, gguf_file=model_path.name)
    model = AutoModelForCausalLM.from_pretrained(model_path.parent, gguf_file=model_path.name, dtype=torch.float32)
    model.eval()
    L = len(model.model.layers)

    checks = []  # (name, value, limit, ok)

    def check(name, value, limit, ok):
        checks.append((name, value, limit, ok))

    # 1. Difference in means at every layer and generation-prompt position.
    direction_file = work / "direction.safetensors"
    _, secs = run([args.binary, "direction", "--model", model_path, "--harmful", hp, "--harmless", sp,
                   "--layer", args.layer, "--output", direction_file])
    ours, meta = read_safetensors(direction_file)
    P = generation_prompt_count(tok, harmful + harmless)
    check("format string", meta.get("format"), "safeneuron.direction/1", meta.get("format") == "safeneuron.direction/1")
    check("generation-prompt positions", int(meta.get("positions", -1)), P, int(meta.get("positions", -1)) == P)
    t = time.time()
    ref = residual_means(model, tok, harmful, P) - residual_means(model, tok, harmless, P)
    print(f"`direction` {secs:.1f} s, reference means {time.time() - t:.1f} s; positions {P} (tokens {meta.get('generation_prompt_tokens')})")
    md = ours["mean_diff"]
    check("mean_diff shape", list(md.shape), [L + 1, P, ref.shape[2]], list(md.shape) == [L + 1, P, ref.shape[2]])
    print("cosine(ours, reference) per layer, min over positions:")
    per_layer, no_direction = [], []
    for l in range(L + 1):
        cs = []
        for p in range(P):
            a, b = md[l, p], ref[l, p]
            nb = np.linalg.norm(b)
            if nb < 1e-6 * max(1.0, np.abs(ref[l]).max()) and np.linalg.norm(a) < 1e-4:
                continue  # identical for every prompt (fixed template tokens at the embedding): no direction
            cs.append(float(a @ b / (np.linalg.norm(a) * nb + 1e-30)))
        if not cs:
            no_direction.append(l)
            continue
        per_layer.append((l, min(cs)))
    line = "  ".join(f"{l}:{c:.7f}" for l, c in per_layer)
    print("  " + line)
    if no_direction:
        print(f"  rows without a direction (identical in every prompt): {no_direction}")
    worst = min(c for _, c in per_layer)
    check("min cosine over layers × positions", f"{worst:.8f}", f">= {args.min_cosine}", worst >= args.min_cosine)
    rel = np.abs(md - ref).max() / np.abs(ref).max()
    print(f"  max |Δ mean_diff| / max |mean_diff| = {rel:.2e}")
    chosen = ref[int(meta["layer"]), int(meta["position"])]
    cos_dir = float(ours["direction"] @ chosen / np.linalg.norm(chosen))
    check(f"direction (layer {meta['layer']}, position {meta['position_offset']}) vs reference", f"{cos_dir:.8f}",
          f">= {args.min_cosine}", cos_dir >= args.min_cosine)

    # 2. Ablation: our logprob --ablate-direction against pre-hooks.
    r = ours["direction"].astype(np.float32)
    pairs_path = work / "pairs.jsonl"
    pairs_path.write_text("".join(json.dumps({"prompt": p, "completion": c}) + "\n" for p, c in PAIRS), encoding="utf-8")
    read = lambda p: [json.loads(l)["logprob"] for l in Path(p).read_text().splitlines() if l.strip()]
    base_ref = reference_logprobs(model, tok, PAIRS)
    abl_ref = with_hooks(model, r, lambda: reference_logprobs(model, tok, PAIRS))
    inputs_only = with_hooks(model, r, lambda: reference_logprobs(model, tok, PAIRS), mid=False)
    run([args.binary, "logprob", "--model", model_path, "--input", pairs_path, "--output", work / "lp_base.jsonl"])
    run([args.binary, "logprob", "--model", model_path, "--ablate-direction", direction_file,
         "--input", pairs_path, "--output", work / "lp_ablated.jsonl"])
    base_ours, abl_ours = read(work / "lp_base.jsonl"), read(work / "lp_ablated.jsonl")

    # 3. The orthogonalised weights, in transformers and in our engine.
    folder = work / "orthogonalised_hf"
    run([args.binary, "prune", "--model", model_path, "--direction", direction_file, "--output", folder])
    cfg = json.loads((folder / "config.json").read_text())
    check("prune folder: tie_word_embeddings", cfg.get("tie_word_embeddings"), False, cfg.get("tie_word_embeddings") is False)
    hf = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)
    hf.eval()
    untied = hf.lm_head.weight.data_ptr() != hf.model.embed_tokens.weight.data_ptr()
    check("prune folder: lm_head separate from embed_tokens", untied, True, untied)
    with torch.no_grad():
        head_diff = float((hf.lm_head.weight - model.model.embed_tokens.weight).abs().max())
    check("prune folder: max |lm_head − original embedding|", f"{head_diff:.1e}", "<= 1e-6", head_diff <= 1e-6)
    with torch.no_grad():
        along = float((hf.model.embed_tokens.weight.double() @ torch.tensor(r, dtype=torch.float64)).abs().max())
    check("prune folder: max |E r|", f"{along:.1e}", "<= 1e-5", along <= 1e-5)
    folder_hf = reference_logprobs(hf, tok, PAIRS)
    run([args.binary, "logprob", "--model", folder, "--input", pairs_path, "--output", work / "lp_folder.jsonl"])
    folder_ours = read(work / "lp_folder.jsonl")

    print("logprob per pair (nats):")
    print("   ref intact | ours intact |  ref hooks | ours --ablate | HF(prune) | ours(prune) | (inputs-only hooks)")
    for i in range(len(PAIRS)):
        print(f"  {base_ref[i]:11.4f} {base_ours[i]:12.4f} | {abl_ref[i]:10.4f} {abl_ours[i]:13.4f} | "
              f"{folder_hf[i]:9.4f} {folder_ours[i]:11.4f} | {inputs_only[i]:9.4f}")
    for label, a, b in [("logprob intact: ours vs transformers", base_ours, base_ref),
                        ("logprob --ablate-direction vs hooks", abl_ours, abl_ref),
                        ("prune folder in transformers vs hooks", folder_hf, abl_ref),
                        ("prune folder in ours vs hooks", folder_ours, abl_ref),
                        ("prune folder in ours vs --ablate-direction", folder_ours, abl_ours)]:
        m = max(abs(x - y) for x, y in zip(a, b))
        check(f"max |Δ| {label}", f"{m:.4f}", f"<= {args.max_logprob_diff}", m <= args.max_logprob_diff)
    shift = max(abs(x - y) for x, y in zip(abl_ref, base_ref))
    mid = max(abs(x - y) for x, y in zip(inputs_only, abl_ref))
    print(f"(the ablation moves the reference log-probs by up to {shift:.3f} nats; hooking only the layer inputs and the "
          f"final norm, without the post-attention norms, differs from the full ablation by up to {mid:.3f} nats)")
    if shift < 10 * args.max_logprob_diff:
        check("the ablation matters (max shift)", f"{shift:.3f}", f"> {10 * args.max_logprob_diff}", False)

    width = max(len(c[0]) for c in checks)
    print("\n" + "check".ljust(width) + " | value | limit | result")
    for name, value, limit, ok in checks:
        print(f"{name.ljust(width)} | {value} | {limit} | {'pass' if ok else 'FAIL'}")
    failed = [c for c in checks if not c[3]]
    if failed:
        print(f"FAILED: {len(failed)} of {len(checks)} checks")
        sys.exit(1)
    print(f"all {len(checks)} checks passed")


if __name__ == "__main__":
    main()
