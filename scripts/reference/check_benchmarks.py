#!/usr/bin/env python3
"""Checks `safeneuron eval --suite capability --benchmarks ...` against an independent PyTorch/transformers scorer.

    swift build -c release --product safeneuron
    python3 scripts/reference/check_benchmarks.py --benchmarks arc_easy,arc_challenge,hellaswag,piqa --limit 500
    python3 scripts/reference/check_benchmarks.py --model M.gguf --benchmarks winogrande --shots 5 --limit 100
    python3 scripts/reference/check_benchmarks.py --benchmarks mmlu --shots 0 --limit 500

Needs torch, transformers, gguf. Work files go to --workdir (default: a temporary folder).

The reference reads the same OLMES request files (vendor-data/benchmarks/), its own way: every line with
doc_id < 1,000,000 is one choice (`idx`) of one document (`doc_id`), gold = `label`; for --shots 0 on ARC and
OpenBookQA the context is `doc.query`. Each request is scored the lm-evaluation-harness way: the context's
trailing spaces move to the continuation, whole = encode(context + continuation), context_ids =
encode(context) (no special tokens), the continuation is whole[len(context_ids):], and its log-likelihood
is the sum of log_softmax(logits) at those tokens, one request at a time, f32 (the GGUF loaded by
transformers). acc = argmax of the log-likelihoods; acc_norm = argmax of log-likelihood / UTF-8 bytes of the
continuation. Documents are the same seeded subset as ours (the script reads our benchmark_items.jsonl to
know which documents were drawn, and checks they all exist in the file).

MMLU has no request files: the reference reads the Arrow files (vendor-data/benchmarks/mmlu/<subject>/{test,dev}.arrow)
with pyarrow and builds each context with OLMES's own MMLU.doc_to_text, taken from the pinned wheel
(olmes_mmlu.py; 5-shot = its "inst+5" prompt over the subject's dev rows), continuations " " + choice, gold =
answer. Documents are matched by our native_id "<subject>/<row>", all subjects as one set.

Passes when every per-choice log-likelihood is within --tolerance (0.02 nats) and every benchmark's acc and
acc_norm are within 0.5 points. Exit status 1 when a check fails.
"""
import argparse, json, subprocess, sys, tempfile, time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from check_identify import DEFAULT_BINARY, DEFAULT_MODEL, ROOT, finish, load_model
from olmes_mmlu import mmlu_context, mmlu_continuations
FILES = {  # benchmark -> (0-shot file, query as context), 5-shot file
    "arc_challenge": (("arc_challenge/test_rc_5shot.jsonl", True), "arc_challenge/test_rc_5shot.jsonl"),
    "arc_easy": (("arc_easy/test_rc_5shot.jsonl", True), "arc_easy/test_rc_5shot.jsonl"),
    "hellaswag": (("hellaswag/rc_0shot.jsonl", False), "hellaswag/rc_5shot.jsonl"),
    "piqa": (("piqa/rc_0shot.jsonl", False), "piqa/val_rc_5shot.jsonl"),
    "winogrande": (("winogrande/rc_0shot.jsonl", False), "winogrande/val_rc_5shot.jsonl"),
    "openbookqa": (("openbookqa/test_rc_5shot.jsonl", True), "openbookqa/test_rc_5shot.jsonl"),
}


def read_docs(path, query_as_context):
    docs = {}
    for line in Path(path).read_text().splitlines():
        if not line.strip():
            continue
        r = json.loads(line)
        if r["doc_id"] >= 1_000_000:
            continue
        ctx = r["doc"]["query"] if query_as_context else r["request"]["context"]
        d = docs.setdefault(r["doc_id"], {"gold": r["label"], "choices": {}})
        d["choices"][r["idx"]] = (ctx, r["request"]["continuation"])
    return docs


def read_mmlu_docs(shots):
    """native_id "<subject>/<row>" -> document, over every subject's test split (pyarrow, OLMES's prompt code)."""
    import pyarrow.ipc as ipc
    folder = ROOT / "vendor-data" / "benchmarks" / "mmlu"
    docs = {}
    for subject_dir in sorted(p for p in folder.iterdir() if p.is_dir()):
        def rows(split):
            with open(subject_dir / f"{split}.arrow", "rb") as f:
                return ipc.open_stream(f).read_all().to_pylist()
        dev = {subject_dir.name: rows("dev")}
        for row, doc in enumerate(rows("test")):
            assert doc["subject"] == subject_dir.name, (subject_dir, row)
            context = mmlu_context(doc, shots, dev)
            docs[f"{subject_dir.name}/{row}"] = {"gold": doc["answer"],
                                                 "choices": {i: (context, c) for i, c in enumerate(mmlu_continuations(doc))}}
    return docs


@torch.no_grad()
def loglikelihood(model, tok, context, continuation):
    while context.endswith(" "):
        context, continuation = context[:-1], " " + continuation
    whole = tok(context + continuation, add_special_tokens=False)["input_ids"]
    ctx = tok(context, add_special_tokens=False)["input_ids"]
    cont = whole[len(ctx):]
    logits = model(torch.tensor([whole])).logits[0].float()
    logp = torch.log_softmax(logits[len(ctx) - 1:-1], dim=-1)
    return float(logp.gather(1, torch.tensor(cont).unsqueeze(1)).sum())


def argmax(xs):
    best = 0
    for i, x in enumerate(xs):
        if x > xs[best]:
            best = i
    return best


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=str(DEFAULT_MODEL))
    ap.add_argument("--binary", default=str(DEFAULT_BINARY))
    ap.add_argument("--benchmarks", default="arc_easy,arc_challenge,hellaswag,piqa")
    ap.add_argument("--shots", type=int, default=0)
    ap.add_argument("--limit", type=int, default=500)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--tolerance", type=float, default=0.02)
    ap.add_argument("--workdir")
    args = ap.parse_args()
    work = Path(args.workdir or tempfile.mkdtemp(prefix="check-benchmarks-"))
    out = work / "ours"
    t = time.time()
    r = subprocess.run([args.binary, "eval", "--model", args.model, "--suite", "capability", "--benchmarks", args.benchmarks,
                        "--shots", str(args.shots), "--limit", str(args.limit), "--subset-seed", str(args.seed),
                        "--output", str(out)], capture_output=True, text=True)
    if r.returncode != 0:
        sys.stderr.write(r.stderr)
        raise SystemExit(f"safeneuron eval failed ({r.returncode})")
    print(f"safeneuron eval: {time.time() - t:.1f} s")
    ours = [json.loads(l) for l in (out / "benchmark_items.jsonl").read_text().splitlines() if l.strip()]
    summary = json.loads((out / "summary.json").read_text())

    tok, model = load_model(args.model)
    failures = []
    for name in args.benchmarks.split(","):
        if name == "mmlu":
            file, key = "mmlu/<subject>/test.arrow", "native_id"
            docs = read_mmlu_docs(args.shots)
            print(f"mmlu: {len(docs)} test questions in the Arrow files")
            if len(docs) != 14042:
                failures.append(f"mmlu: {len(docs)} test questions, expected 14,042")
        else:
            (zero, query), five = FILES[name]
            file, query = (zero, query) if args.shots == 0 else (five, False)
            key = "doc_id"
            docs = read_docs(ROOT / "vendor-data" / "benchmarks" / file, query)
        mine = [o for o in ours if o["benchmark"] == name]
        worst, hits, hits_norm, t = 0.0, 0, 0, time.time()
        for o in mine:
            d = docs.get(o[key])
            if d is None:
                failures.append(f"{name}: document {o[key]} is not in {file}")
                continue
            choices = [d["choices"][i] for i in range(len(d["choices"]))]
            lls = [loglikelihood(model, tok, c, k) for c, k in choices]
            nbytes = [len(k.encode("utf-8")) for _, k in choices]
            if o["gold"] != d["gold"]:
                failures.append(f"{name} doc {o['doc_id']}: gold {o['gold']} vs {d['gold']}")
            for a, b in zip(lls, o["loglikelihoods"]):
                worst = max(worst, abs(a - b))
            hits += argmax(lls) == d["gold"]
            hits_norm += argmax([l / n for l, n in zip(lls, nbytes)]) == d["gold"]
        n = len(mine)
        ref_acc, ref_norm = hits / n, hits_norm / n
        res = next(b for b in summary["benchmarks"] if b["benchmark"] == name)
        print(f"{name} ({args.shots}-shot, {n} docs, reference {time.time() - t:.0f} s): acc ours {res['acc']:.4f} ref {ref_acc:.4f}, "
              f"acc_norm ours {res['acc_norm']:.4f} ref {ref_norm:.4f}, largest |Δ log-likelihood| {worst:.5f} nats")
        if worst > args.tolerance:
            failures.append(f"{name}: log-likelihood differs by {worst:.4f} nats > {args.tolerance}")
        if abs(res["acc"] - ref_acc) > 0.005 or abs(res["acc_norm"] - ref_norm) > 0.005:
            failures.append(f"{name}: acc/acc_norm differ by more than 0.5 points")
    finish(failures)


if __name__ == "__main__":
    main()
