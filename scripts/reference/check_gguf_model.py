#!/usr/bin/env python3
"""Checks safeneuron on a real GGUF model against transformers f32 loading the same file (default: gemma-3-270m).

    scripts/setup.sh --with gemma3 && swift build -c release --product safeneuron
    python3 scripts/reference/check_gguf_model.py [--model vendor-data/models/gemma-3-270m-q4_k_m.gguf]

Needs torch, transformers 5, gguf, accelerate, numpy. Work files go to --workdir (default: a temporary folder);
nothing is written into the repository. Exit status 1 when a check fails. The texts below were written for this
check and appear nowhere else in the project.

1. tokenizer: `safeneuron tokenize --text T` against `tokenizer(T).input_ids` for every text in TEXTS
   (whitespace runs, newlines, digits, accents, CJK, emoji, markup, special-token strings).
2. logprob: `safeneuron logprob` against the same TRL-style sums in transformers (chat template, or the plain
   ChatML fallback both sides use when the model has none), max |Δ| ≤ --max-logprob-diff nats.
3. generate: greedy, 16 new tokens, batched with a KV cache (`generate --raw --input`), against
   `model.generate(do_sample=False)` one prompt at a time; one prompt is longer than the model's sliding window,
   so local layers decode past it. Equal on at least --min-greedy of the prompts.
4. convert: `safeneuron convert --format hf --dtype f32` weights against transformers' own state_dict, and the
   converted folder's tokenizer, loaded by transformers and by safeneuron, giving the GGUF tokenizer's ids.
"""
import argparse, json, sys, tempfile
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from check_identify import DEFAULT_BINARY, ROOT, finish, load_model, read_safetensors, run, template_ids  # noqa: E402

DEFAULT_MODEL = ROOT / "vendor-data" / "models" / "gemma-3-270m-q4_k_m.gguf"

TEXTS = [
    "The lighthouse keeper counted gulls each morning before the ferry left for the mainland.",
    "  Two leading spaces,\tone tab, and   three inner spaces.\n\nThen a blank line.",
    "Prices rose 3.75% in Q2 2031; the index closed at 12,408.16 points.",
    "Crème brûlée, jalapeño, naïve façade — and a Zürich café on Straße 7.",
    "東京の図書館で、古い地図を見つけました。",
    "Deploy finished 🚀✅ after 42 retries… next: 🧪",
    "<div class=\"note\">Remember: x <= y && y != 0</div>",
    "def area(r):\n    return 3.14159 * r ** 2\n",
    "<start_of_turn>user\nWhat colour is a ripe plum?<end_of_turn>\n<start_of_turn>model\n",
    "ALL CAPS HEADLINE: RIVER OTTERS RETURN TO THE ESTUARY",
]

PAIRS = [
    ("Name a bird that cannot fly.", "The ostrich cannot fly, although it runs very fast."),
    ("What is the boiling point of water at sea level?", "Water boils at 100 degrees Celsius at sea level."),
    ("Give me a word that rhymes with lantern.", "A loose rhyme for lantern is 'pattern'."),
    ("Translate 'good evening' into French.", "In French, 'good evening' is 'bonsoir'."),
    ("Describe a quiet harbour at dawn.", "Mist lay on the water while the first boats untied their ropes."),
    ("How many legs does a spider have?", "A spider has eight legs."),
]

LONG = ("A surveyor walked the old canal towpath, noting every lock, bridge and milestone along the way. " * 60).strip()
PROMPTS = [
    "The three primary colours of light are",
    "Once upon a time, in a village at the edge of a pine forest,",
    "In mathematics, a prime number is",
    "The recipe calls for two cups of flour, one egg and",
    LONG + " At the final lock the surveyor",
]


@torch.no_grad()
def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default=str(DEFAULT_MODEL))
    ap.add_argument("--binary", default=str(DEFAULT_BINARY))
    ap.add_argument("--max-logprob-diff", type=float, default=0.02)
    ap.add_argument("--min-greedy", type=int, default=4)
    ap.add_argument("--new-tokens", type=int, default=16)
    ap.add_argument("--workdir")
    args = ap.parse_args()
    work = Path(args.workdir or tempfile.mkdtemp(prefix="check-gguf-"))
    work.mkdir(parents=True, exist_ok=True)
    failures = []
    tok, model = load_model(args.model)
    print(f"model {args.model}: {type(model).__name__}, {sum(p.numel() for p in model.parameters())} parameters")

    # 1. tokenizer
    mismatched = 0
    for t in TEXTS:
        want = tok(t).input_ids
        got = json.loads(run([args.binary, "tokenize", "--model", args.model, "--text", t])[0].stdout)
        if got != want:
            mismatched += 1
            failures.append(f"tokenize {t[:40]!r}: ours {got[:12]}… vs HF {want[:12]}…")
    print(f"tokenizer: {len(TEXTS) - mismatched}/{len(TEXTS)} texts give identical ids")

    # 2. logprob
    inp = work / "pairs.jsonl"
    inp.write_text("".join(json.dumps({"prompt": p, "completion": c}) + "\n" for p, c in PAIRS))
    out = work / "scores.jsonl"
    run([args.binary, "logprob", "--model", args.model, "--input", inp, "--output", out])
    ours = [json.loads(l) for l in out.read_text().splitlines()]
    worst = 0.0
    for (p, c), o in zip(PAIRS, ours):
        user = [{"role": "user", "content": p}]
        prompt = template_ids(tok, user, True)
        full = template_ids(tok, user + [{"role": "assistant", "content": c}], False)
        assert full[:len(prompt)] == prompt, "the template's prompt ids are not a prefix of the full ids"
        logits = model(torch.tensor([full])).logits[0].double()
        lp = torch.log_softmax(logits[:-1], dim=-1).gather(1, torch.tensor(full[1:])[:, None])[:, 0]
        ref = lp[len(prompt) - 1:].sum().item()
        if o["tokens"] != len(full) - len(prompt):
            failures.append(f"logprob {p!r}: {o['tokens']} completion tokens vs {len(full) - len(prompt)}")
        worst = max(worst, abs(o["logprob"] - ref))
    print(f"logprob: max |Δ| {worst:.5f} nats over {len(PAIRS)} pairs")
    if worst > args.max_logprob_diff:
        failures.append(f"logprob differs by {worst:.5f} nats (> {args.max_logprob_diff})")

    # 3. greedy generation, batched with a KV cache on our side
    gin = work / "prompts.jsonl"
    gin.write_text("".join(json.dumps({"prompt": p}) + "\n" for p in PROMPTS))
    gout = work / "generations.jsonl"
    run([args.binary, "generate", "--model", args.model, "--raw", "--input", gin, "--output", gout,
         "--max-tokens", args.new_tokens, "--batch-size", len(PROMPTS)])
    gens = [json.loads(l)["response"] for l in gout.read_text().splitlines()]
    stops = sorted({tok.eos_token_id, *[tok.convert_tokens_to_ids(t) for t in ("<end_of_turn>", "<eos>")
                                        if t in tok.get_vocab()]} - {None})
    equal = 0
    window = getattr(model.config, "sliding_window", None)
    for p, g in zip(PROMPTS, gens):
        ids = tok(p, return_tensors="pt").input_ids
        outp = model.generate(ids, max_new_tokens=args.new_tokens, do_sample=False, eos_token_id=stops,
                              pad_token_id=tok.pad_token_id or 0)
        ref = tok.decode(outp[0, ids.shape[1]:], skip_special_tokens=True)
        same = ref == g
        equal += same
        note = f" (prompt {ids.shape[1]} tokens > window {window})" if window and ids.shape[1] > window else ""
        print(f"  greedy {'equal' if same else 'DIFFERENT'}{note}: {g!r}" + ("" if same else f" vs HF {ref!r}"))
    print(f"generate: {equal}/{len(PROMPTS)} greedy continuations equal")
    if equal < args.min_greedy:
        failures.append(f"greedy generation equal on {equal}/{len(PROMPTS)} prompts (< {args.min_greedy})")

    # 4. convert
    folder = work / "converted"
    run([args.binary, "convert", "--model", args.model, "--output", folder, "--format", "hf", "--dtype", "f32"])
    ours = read_safetensors(folder / "model.safetensors")
    theirs = {k: v.double().numpy() for k, v in model.state_dict().items()}
    if model.config.tie_word_embeddings:
        theirs.pop("lm_head.weight", None)
    missing = sorted(set(theirs) - set(ours)); extra = sorted(set(ours) - set(theirs))
    if missing or extra:
        failures.append(f"convert: names differ (missing {missing[:3]}, extra {extra[:3]})")
    worst, unequal = 0.0, 0
    for k in sorted(set(ours) & set(theirs)):
        if ours[k].shape != theirs[k].shape:
            failures.append(f"convert {k}: shape {ours[k].shape} vs {theirs[k].shape}")
            continue
        d = float(np.abs(ours[k] - theirs[k]).max()) if ours[k].size else 0.0
        worst = max(worst, d); unequal += d != 0
    print(f"convert: {len(set(ours) & set(theirs))} tensors, {unequal} not bit-equal, max |Δ| {worst:g}")
    if unequal:
        failures.append(f"convert: {unequal} tensors differ from transformers' load (max |Δ| {worst:g})")
    from transformers import AutoTokenizer
    exported = AutoTokenizer.from_pretrained(folder)
    same = 0
    for t in TEXTS:
        ours = json.loads(run([args.binary, "tokenize", "--model", folder, "--text", t])[0].stdout)
        same += tok(t).input_ids == exported(t).input_ids == ours
    print(f"convert: the exported tokenizer gives the GGUF tokenizer's ids on {same}/{len(TEXTS)} texts "
          "(in transformers and in safeneuron)")
    if same < len(TEXTS):
        failures.append(f"convert: exported tokenizer differs on {len(TEXTS) - same} texts")
    finish(failures)


if __name__ == "__main__":
    main()
