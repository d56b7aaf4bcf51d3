#!/usr/bin/env python3
"""Checks `safeneuron eval --suite capability --benchmarks gsm8k` against transformers, problem by problem.

    swift build -c release --product safeneuron
    python3 scripts/reference/check_gsm8k.py --limit 100 [--generation-tokens 256] [--model M.gguf]

Needs torch, transformers, gguf. Work files go to --workdir (default: a temporary folder).

The reference reads OLMES's request file (vendor-data/benchmarks/gsm8k/test_8shot.jsonl) itself: the context is
`request.context` (8-shot; `Question: …\\nAnswer:` alone with --shots 0), generation is greedy
(`model.generate(do_sample=False)`, the GGUF loaded in f32 by transformers, one problem at a time, no special tokens
added) for at most the request's `max_gen_toks` (or --generation-tokens) new tokens, cut at the first of the
request's `stop_sequences`. The answer is the number after "####" if the text has one, else the last number;
both it and `short_answer` have OLMES's `regexes_to_ignore` removed ("," "$" "(?s).*#### " "\\.$") before the
exact-match comparison. Passes when every problem's extracted answer and exact match equal ours.
"""
import argparse, json, re, subprocess, sys, tempfile, time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from check_identify import DEFAULT_BINARY, DEFAULT_MODEL, ROOT, finish, load_model  # noqa: E402

FILE = ROOT / "vendor-data" / "benchmarks" / "gsm8k" / "test_8shot.jsonl"


def normalize(s):
    for pattern in [",", r"\$", r"(?s).*#### ", r"\.$"]:
        s = re.sub(pattern, "", s.strip())
    return s.strip()


def extract(text):
    if "####" in text:
        m = re.search(r"-?[$0-9.,]*[0-9]", text.split("####", 1)[1])
        return m.group(0) if m else None
    found = re.findall(r"-?[$0-9.,]*[0-9]", text)
    return found[-1] if found else None


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=str(DEFAULT_MODEL))
    ap.add_argument("--binary", default=str(DEFAULT_BINARY))
    ap.add_argument("--limit", type=int, default=100)
    ap.add_argument("--shots", type=int, default=5, help="0, or 5 for the requests' own 8-shot context")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--generation-tokens", type=int)
    ap.add_argument("--workdir")
    args = ap.parse_args()
    work = Path(args.workdir or tempfile.mkdtemp(prefix="check-gsm8k-"))
    out = work / "ours"
    cmd = [args.binary, "eval", "--model", args.model, "--suite", "capability", "--benchmarks", "gsm8k", "--shots",
           str(args.shots), "--limit", str(args.limit), "--subset-seed", str(args.seed), "--output", str(out)]
    if args.generation_tokens:
        cmd += ["--generation-tokens", str(args.generation_tokens)]
    t = time.time()
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        sys.stderr.write(r.stderr)
        raise SystemExit(f"safeneuron eval failed ({r.returncode})")
    print(f"safeneuron eval: {time.time() - t:.1f} s")
    ours = [json.loads(l) for l in (out / "benchmark_items.jsonl").read_text().splitlines() if l.strip()]
    docs = {}
    for line in FILE.read_text().splitlines():
        if line.strip():
            row = json.loads(line)
            docs.setdefault(row["doc_id"], row)
    tok, model = load_model(args.model)
    failures, same_answer, same_text, hits_ref, t = [], 0, 0, 0, time.time()
    for o in ours:
        row = docs[o["doc_id"]]
        req, doc = row["request"], row["doc"]
        context = req["context"] if args.shots else f"Question: {doc['question']}\nAnswer:"
        stops = req.get("stop_sequences", ["Question:", "</s>", "<|im_end|>", "\n\n"])
        budget = req.get("generation_kwargs", {}).get("max_gen_toks", 512)
        if args.generation_tokens:
            budget = min(budget, args.generation_tokens)
        ids = tok(context, add_special_tokens=False, return_tensors="pt").input_ids
        with torch.no_grad():
            gen = model.generate(ids, max_new_tokens=budget, do_sample=False, stop_strings=stops, tokenizer=tok,
                                 pad_token_id=tok.pad_token_id or 0)
        text = tok.decode(gen[0, ids.shape[1]:], skip_special_tokens=True)
        cut = min([text.find(s) for s in stops if s in text] or [len(text)])
        text = text[:cut]
        got = extract(text)
        got = normalize(got) if got is not None else None
        em = got is not None and got == normalize(doc["short_answer"])
        hits_ref += em
        same_text += text == o["generation"]
        if got == o.get("extracted") and em == o["exact_match"]:
            same_answer += 1
        else:
            failures.append(f"doc {o['doc_id']}: ours {o.get('extracted')!r} ({o['exact_match']}) vs reference {got!r} ({em})")
    n = len(ours)
    ours_em = sum(o["exact_match"] for o in ours) / n
    print(f"gsm8k ({n} problems, reference {time.time() - t:.0f} s): exact match ours {ours_em:.4f} ref {hits_ref / n:.4f}; "
          f"answers equal on {same_answer}/{n}, generations identical on {same_text}/{n}")
    finish(failures)


if __name__ == "__main__":
    main()
