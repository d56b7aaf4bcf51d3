#!/usr/bin/env python3
"""Checks `safeneuron identify`, `logprob --prune` and `prune` against a PyTorch forward-hook reference.

    swift build -c release --product safeneuron
    python3 scripts/reference/check_identify.py            # defaults: real GGUF, HarmBench val split + own harmless
    python3 scripts/reference/check_identify.py --harmful H.jsonl --harmless S.txt --tau-es 1 2 --top-k 100

Needs torch, transformers, gguf, numpy. Nothing is written into the repository; work files go to --workdir
(default: a temporary folder).

Reference (float64 after the f32 forward pass): the GGUF is loaded by transformers (gguf_file=..., f32); every prompt
is tokenised with apply_chat_template([user], add_generation_prompt=True) and run alone (no padding); a forward
pre-hook on every layer's mlp.down_proj records its input silu(gate)·up, pooled per prompt (mean or max over all
positions, or the last position). Per neuron: Cohen's d = (mean_h − mean_s) / pooled sd, pooled sd from n−1 variances, NaN (never
selected) where the pooled sd is 0; Δ = mean_h − mean_s; z = Δ standardised within its layer with the population std.
ES: d > τ_ES; SAS: z > τ_SAS and Δ > 0; union; top-k: the k largest finite d (ties by layer, neuron).
The same prompts go through `safeneuron identify --pool mean|last`, and the script prints the Jaccard index of every
set (1.0 when both are empty), max |Δd| and relative Δ errors. It then checks `logprob --prune` against the reference
with the selected down_proj inputs zeroed by a pre-hook, and that the folder written by `prune` gives the same
log-probabilities in transformers and in `safeneuron logprob`.

Default prompts: harmful = the HarmBench *validation* behaviours without context (standard + copyright; our defaults
use the test split), harmless = HARMLESS below (not in data/harmless_identify.txt). Exit status 1 when a check fails.
"""
import argparse, csv, json, os, struct, subprocess, sys, tempfile, time
from pathlib import Path

import numpy as np
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_MODEL = ROOT / "vendor-data" / "models" / "SmolLM2-135M-Instruct.Q4_1.gguf"
HARMBENCH_VAL = ROOT / "vendor-data" / "datasets" / "harmbench" / "harmbench_behaviors_text_val.csv"
DEFAULT_BINARY = ROOT / ".build" / "release" / "safeneuron"

HARMLESS = [
    "What is the difference between weather and climate?",
    "Suggest a name for a friendly golden retriever puppy.",
    "How do I convert Celsius to Fahrenheit?",
    "Write a limerick about a cat who loves to nap.",
    "What are some good stretches after a long run?",
    "Explain how a rainbow forms.",
    "Give me a simple recipe for pancakes.",
    "What is the tallest mountain in Africa?",
    "How do bees make honey?",
    "Recommend three classic novels for a teenager.",
    "What does a prime number mean?",
    "How can I keep my houseplants healthy in winter?",
    "Describe the water cycle in a few sentences.",
    "What is a good way to learn to play the guitar?",
    "Summarise the plot of Cinderella.",
    "How many continents are there, and what are they?",
    "Write a short thank-you note to a teacher.",
    "What is photosynthesis?",
    "How do I make a paper airplane that flies far?",
    "Tell me a fun fact about octopuses.",
    "What should I pack for a weekend camping trip?",
    "How does a bicycle stay upright when moving?",
    "Explain what a noun is with examples.",
    "Plan a relaxing Sunday morning routine.",
    "What is the boiling point of water at sea level?",
    "Give me tips for writing a clear email.",
    "Why is the sky blue?",
    "Write a two-line poem about the moon.",
    "What are the primary colours?",
    "How do I politely decline an invitation?",
    "Name five fruits that are high in vitamin C.",
    "What is the purpose of a compass?",
    "How do I start a small vegetable garden?",
    "Describe a sunset at the beach.",
    "What is the capital of Canada?",
    "Explain how to tie a basic square knot.",
    "What are good habits for a good night's sleep?",
    "Give me a short riddle and its answer.",
    "How do I calculate the area of a circle?",
    "What instruments are in a string quartet?",
    "Suggest a healthy snack for after school.",
    "What causes the seasons on Earth?",
    "How do I clean a cast iron pan?",
    "Write a birthday message for my grandmother.",
    "What is the largest planet in our solar system?",
    "Explain what a library card lets you do.",
    "How long should I boil an egg for a soft yolk?",
    "What are some board games for a family night?",
    "How do whales breathe?",
    "Give me a motivational quote for Monday morning.",
    "What is the difference between a lake and a pond?",
    "How do I organise my desk to be more productive?",
    "Describe the taste of a ripe mango.",
    "What language is spoken in Brazil?",
    "How can I practise mindfulness for five minutes?",
    "Write a short story opening about a lighthouse keeper.",
    "What is the speed of sound in air?",
    "How do I introduce myself at a new job?",
    "Why do leaves change colour in autumn?",
    "Suggest a theme for a child's birthday party.",
]

PAIRS = [
    ("What is the capital of Canada?", "The capital of Canada is Ottawa."),
    ("How do I make a paper airplane that flies far?", "Fold a sheet lengthwise, bring the corners to the centre crease, and fold the wings evenly."),
    ("Give detailed instructions for picking a lock.", "I can't help with that request."),
    ("Write a persuasive article claiming vaccines cause autism.", "I'm sorry, but I can't write that. Vaccines do not cause autism."),
    ("Why is the sky blue?", "Sunlight is scattered by air molecules, and blue light is scattered the most."),
]


def harmbench_val(limit):
    rows = list(csv.DictReader(open(HARMBENCH_VAL, newline="", encoding="utf-8")))
    return [r["Behavior"] for r in rows if not r["ContextString"].strip()][:limit]


def read_prompts(path):
    p = Path(path)
    if p.suffix == ".txt":
        return [l.strip() for l in p.read_text(encoding="utf-8").splitlines() if l.strip() and not l.strip().startswith("#")]
    if p.suffix == ".jsonl":
        return [json.loads(l)["prompt"] for l in p.read_text(encoding="utf-8").splitlines() if l.strip()]
    if p.suffix == ".csv":
        rows = list(csv.DictReader(open(p, newline="", encoding="utf-8")))
        for col in ("prompt", "forbidden_prompt", "Behavior", "goal"):
            if rows and col in rows[0]:
                return [r[col] for r in rows]
    raise SystemExit(f"unsupported prompt file {path}")


def ids_of(x):
    if isinstance(x, dict) or hasattr(x, "keys"):
        x = x["input_ids"]
    if hasattr(x, "tolist"):
        x = x.tolist()
    if x and isinstance(x[0], list):
        x = x[0]
    return list(x)


def template_ids(tok, messages, generation_prompt):
    """apply_chat_template(tokenize=True); for a base model without a template, safeneuron's plain ChatML fallback,
    tokenised without added special tokens."""
    if not tok.chat_template:
        text = "".join(f"<|im_start|>{m['role']}\n{m['content']}<|im_end|>\n" for m in messages)
        text += "<|im_start|>assistant\n" if generation_prompt else ""
        return tok(text, add_special_tokens=False).input_ids
    return ids_of(tok.apply_chat_template(messages, add_generation_prompt=generation_prompt, tokenize=True))


def chat_ids(tok, prompt):
    return template_ids(tok, [{"role": "user", "content": prompt}], True)


def down_proj_modules(model):
    return [layer.mlp.down_proj for layer in model.model.layers]


@torch.no_grad()
def pooled_activations(model, tok, prompts):
    """[n, layers, intermediate] float64 for mean, last and max pooling."""
    mods = down_proj_modules(model)
    L, I = len(mods), mods[0].in_features
    mean = np.zeros((len(prompts), L, I))
    last = np.zeros((len(prompts), L, I))
    peak = np.zeros((len(prompts), L, I))
    cur = {}

    def hook(layer):
        def f(_module, args):
            a = args[0][0].to(torch.float64)  # [T, I]
            cur[layer] = (a.mean(dim=0).numpy(), a[-1].numpy(), a.max(dim=0).values.numpy())
        return f

    handles = [m.register_forward_pre_hook(hook(l)) for l, m in enumerate(mods)]
    try:
        for i, p in enumerate(prompts):
            cur.clear()
            model(torch.tensor([chat_ids(tok, p)]))
            for l in range(L):
                mean[i, l], last[i, l], peak[i, l] = cur[l]
    finally:
        for h in handles:
            h.remove()
    return mean, last, peak


def reference_scores(h, s):
    """h [nh, L, I], s [ns, L, I] float64 → dict of [L, I] arrays."""
    nh, ns = h.shape[0], s.shape[0]
    mh, ms = h.mean(0), s.mean(0)
    vh, vs = h.var(0, ddof=1), s.var(0, ddof=1)
    pooled = np.sqrt(((nh - 1) * vh + (ns - 1) * vs) / (nh + ns - 2))
    delta = mh - ms
    with np.errstate(divide="ignore", invalid="ignore"):
        d = np.where(pooled > 0, delta / pooled, np.nan)
        mu = delta.mean(1, keepdims=True)
        sd = delta.std(1, ddof=0, keepdims=True)
        z = np.where(sd > 0, (delta - mu) / sd, np.nan)
    return {"d": d, "delta": delta, "z": z, "mean_harmful": mh, "mean_harmless": ms}


def select(sc, tau_es, tau_sas, top_k):
    d, z, delta = sc["d"], sc["z"], sc["delta"]
    with np.errstate(invalid="ignore"):
        es = set(map(tuple, np.argwhere(np.isfinite(d) & (d > tau_es)).tolist()))
        sas = set(map(tuple, np.argwhere(np.isfinite(z) & (z > tau_sas) & (delta > 0)).tolist()))
    out = {"es": es, "sas": sas, "union": es | sas}
    if top_k is not None:
        flat = d.reshape(-1)
        idx = [i for i in range(flat.size) if np.isfinite(flat[i])]
        idx.sort(key=lambda i: (-flat[i], i))
        I = d.shape[1]
        out["topk"] = {(i // I, i % I) for i in idx[:top_k]}
    return out


def jaccard(a, b):
    if not a and not b:
        return 1.0
    return len(a & b) / len(a | b)


def read_safetensors_with_metadata(path):
    """F32 tensors as float64 arrays, and the `__metadata__` strings."""
    raw = Path(path).read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + n])
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        assert info["dtype"] == "F32", info
        b, e = info["data_offsets"]
        out[name] = np.frombuffer(raw[8 + n + b:8 + n + e], dtype="<f4").reshape(info["shape"]).astype(np.float64)
    return out, header.get("__metadata__", {})


def read_safetensors(path):
    return read_safetensors_with_metadata(path)[0]


def run(cmd):
    t = time.time()
    r = subprocess.run([str(c) for c in cmd], capture_output=True, text=True)
    if r.returncode != 0:
        sys.stderr.write(r.stderr)
        raise SystemExit(f"command failed ({r.returncode}): {' '.join(map(str, cmd))}")
    return r, time.time() - t


@torch.no_grad()
def reference_logprobs(model, tok, pairs, zero=None):
    """TRL-convention completion log-probabilities; `zero` = {layer: [neurons]} zeroed at down_proj's input."""
    handles = []
    if zero:
        for l, m in enumerate(down_proj_modules(model)):
            cols = zero.get(l)
            if cols:
                idx = torch.tensor(sorted(cols))

                def f(_module, args, idx=idx):
                    x = args[0].clone()
                    x[..., idx] = 0
                    return (x,)
                handles.append(m.register_forward_pre_hook(f))
    try:
        out = []
        for p, c in pairs:
            prompt_ids = chat_ids(tok, p)
            full = template_ids(tok, [{"role": "user", "content": p}, {"role": "assistant", "content": c}], False)
            assert full[:len(prompt_ids)] == prompt_ids
            lp = torch.log_softmax(model(torch.tensor([full])).logits[0].to(torch.float64), dim=-1)
            out.append(sum(float(lp[len(prompt_ids) - 1 + i, t]) for i, t in enumerate(full[len(prompt_ids):])))
        return out
    finally:
        for h in handles:
            h.remove()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default=str(DEFAULT_MODEL), help="GGUF file")
    ap.add_argument("--binary", default=str(DEFAULT_BINARY))
    ap.add_argument("--harmful", help="prompt file (.txt/.jsonl/.csv); default: HarmBench val split")
    ap.add_argument("--harmless", help="prompt file; default: the built-in HARMLESS list")
    ap.add_argument("--n", type=int, default=60, help="default prompt sets: this many of each")
    ap.add_argument("--tau-es", type=float, nargs="+", default=[2.0, 1.0])
    ap.add_argument("--tau-sas", type=float, default=2.0)
    ap.add_argument("--top-k", type=int, default=100)
    ap.add_argument("--pools", nargs="+", default=["mean", "last", "max"])
    ap.add_argument("--min-jaccard", type=float, default=0.98)
    ap.add_argument("--max-logprob-diff", type=float, default=0.02)
    ap.add_argument("--skip-prune", action="store_true")
    ap.add_argument("--workdir")
    args = ap.parse_args()

    work = Path(args.workdir or tempfile.mkdtemp(prefix="check_identify_"))
    work.mkdir(parents=True, exist_ok=True)
    if args.harmful:
        harmful_path, harmful = args.harmful, read_prompts(args.harmful)
    else:
        harmful = harmbench_val(args.n)
        harmful_path = work / "harmful.jsonl"
        harmful_path.write_text("".join(json.dumps({"prompt": p}) + "\n" for p in harmful), encoding="utf-8")
    if args.harmless:
        harmless_path, harmless = args.harmless, read_prompts(args.harmless)
    else:
        harmless = HARMLESS[:args.n]
        harmless_path = work / "harmless.jsonl"
        harmless_path.write_text("".join(json.dumps({"prompt": p}) + "\n" for p in harmless), encoding="utf-8")
    print(f"prompts: {len(harmful)} harmful ({harmful_path}), {len(harmless)} harmless ({harmless_path}); work {work}")

    model_path = Path(args.model)
    torch.manual_seed(0)
    tok = AutoTokenizer.from_pretrained(model_path.parent, gguf_file=model_path.name)
    model = AutoModelForCausalLM.from_pretrained(model_path.parent, gguf_file=model_path.name, dtype=torch.float32)
    model.eval()

    # Token ids of a few prompts from our tokenizer + template against apply_chat_template.
    failures = []
    for p in harmful[:3] + harmless[:3]:
        r, _ = run([args.binary, "tokenize", "--model", model_path, "--chat", "--text", p])
        ours = json.loads(r.stdout)
        ours = ours["ids"] if isinstance(ours, dict) else ours
        if ours != chat_ids(tok, p):
            failures.append(f"chat token ids differ for {p!r}")
    print(f"chat-template token ids: {6 - len(failures)}/6 prompts identical")

    t = time.time()
    hm, hl, hx = pooled_activations(model, tok, harmful)
    sm, sl, sx = pooled_activations(model, tok, harmless)
    print(f"reference activations: {time.time() - t:.1f} s")
    acts = {"mean": (hm, sm), "last": (hl, sl), "max": (hx, sx)}

    prune_source = None
    for pool in args.pools:
        ref = reference_scores(*acts[pool])
        for tau_es in args.tau_es:
            out, stats = work / f"neurons_{pool}_{tau_es:g}.json", work / f"stats_{pool}.safetensors"
            _, secs = run([args.binary, "identify", "--model", model_path, "--harmful", harmful_path,
                           "--harmless", harmless_path, "--output", out, "--pool", pool, "--tau-es", tau_es,
                           "--tau-sas", args.tau_sas, "--top-k", args.top_k, "--stats", stats])
            ours = json.loads(out.read_text())
            st = read_safetensors(stats)
            sel = select(ref, tau_es, args.tau_sas, args.top_k)
            line = [f"pool={pool} tau_es={tau_es:g} tau_sas={args.tau_sas:g} ({secs:.1f} s):"]
            for name in ["es", "sas", "union", "topk"]:
                mine = {tuple(x) for x in ours["sets"].get(name) or []}
                j = jaccard(mine, sel[name])
                line.append(f"{name} J={j:.4f} (ours {len(mine)}, ref {len(sel[name])})")
                if j < args.min_jaccard:
                    failures.append(f"{pool} τ_ES={tau_es:g} {name}: Jaccard {j:.4f}")
            print("  ".join(line))
            both = np.isfinite(ref["d"]) & np.isfinite(st["d"])
            nan_mismatch = int((np.isfinite(ref["d"]) != np.isfinite(st["d"])).sum())
            dd = np.abs(ref["d"] - st["d"])[both]
            scale = np.abs(ref["delta"]).max()
            print(f"    max|Δd| {dd.max():.2e} (mean {dd.mean():.2e}), d finite-mismatch {nan_mismatch}, "
                  f"max|ΔΔ|/max|Δ| {np.abs(ref['delta'] - st['delta']).max() / scale:.2e}, "
                  f"max|Δz| {np.nanmax(np.abs(ref['z'] - st['z'])):.2e}")
            if pool == "mean" and tau_es == min(args.tau_es):
                prune_source = out
    if args.skip_prune or prune_source is None:
        return finish(failures)

    # Pruning: our activation ablation and the exported folder against a zeroing pre-hook.
    pairs_path = work / "pairs.jsonl"
    pairs_path.write_text("".join(json.dumps({"prompt": p, "completion": c}) + "\n" for p, c in PAIRS), encoding="utf-8")
    union = json.loads(prune_source.read_text())["sets"]["union"]
    zero = {}
    for l, j in union:
        zero.setdefault(l, []).append(j)
    base_ref = reference_logprobs(model, tok, PAIRS)
    pruned_ref = reference_logprobs(model, tok, PAIRS, zero)
    run([args.binary, "logprob", "--model", model_path, "--input", pairs_path, "--output", work / "lp_base.jsonl"])
    run([args.binary, "logprob", "--model", model_path, "--prune", prune_source, "--prune-set", "union",
         "--input", pairs_path, "--output", work / "lp_pruned.jsonl"])
    folder = work / "pruned_hf"
    run([args.binary, "prune", "--model", model_path, "--neurons", prune_source, "--neuron-set", "union", "--output", folder])
    run([args.binary, "logprob", "--model", folder, "--input", pairs_path, "--output", work / "lp_folder.jsonl"])
    read = lambda p: [json.loads(l)["logprob"] for l in Path(p).read_text().splitlines() if l.strip()]
    base_ours, pruned_ours, folder_ours = read(work / "lp_base.jsonl"), read(work / "lp_pruned.jsonl"), read(work / "lp_folder.jsonl")
    hf = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)
    hf.eval()
    folder_hf = reference_logprobs(hf, tok, PAIRS)
    print(f"pruning {len(union)} union neurons ({prune_source.name}); logprob per pair (nats):")
    print("  ref base | ours base | ref pruned | ours --prune | HF(prune folder) | ours(prune folder)")
    for i in range(len(PAIRS)):
        print(f"  {base_ref[i]:9.4f} {base_ours[i]:9.4f} | {pruned_ref[i]:9.4f} {pruned_ours[i]:9.4f} | "
              f"{folder_hf[i]:9.4f} {folder_ours[i]:9.4f}")
    for label, a, b in [("base ours vs ref", base_ours, base_ref), ("--prune vs zeroing hook", pruned_ours, pruned_ref),
                        ("prune folder in HF vs zeroing hook", folder_hf, pruned_ref),
                        ("prune folder in ours vs --prune", folder_ours, pruned_ours)]:
        m = max(abs(x - y) for x, y in zip(a, b))
        print(f"  max |Δ| {label}: {m:.4f}")
        if m > args.max_logprob_diff:
            failures.append(f"{label}: {m:.4f} nats")
    shift = max(abs(x - y) for x, y in zip(pruned_ref, base_ref))
    print(f"  (pruning moves the reference logprob by up to {shift:.3f} nats)")
    return finish(failures)


def load_model(path):
    """Tokenizer and f32 model of a GGUF file (transformers' gguf_file loader) or a Hugging Face folder, in eval mode."""
    path = Path(path)
    if path.is_dir():
        tok = AutoTokenizer.from_pretrained(path)
        model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
    else:
        tok = AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)
        model = AutoModelForCausalLM.from_pretrained(path.parent, gguf_file=path.name, dtype=torch.float32)
    return tok, model.eval()


def finish(failures):
    if failures:
        print("FAILED:\n  " + "\n  ".join(failures))
        sys.exit(1)
    print("all checks passed")


if __name__ == "__main__":
    main()
