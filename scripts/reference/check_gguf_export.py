#!/usr/bin/env python3
"""Checks `safeneuron convert --format gguf` against the `gguf` Python package and transformers' GGUF loader.

    swift build -c release --product safeneuron
    python3 scripts/reference/check_gguf_export.py --model runs/default/methods/dpo/model     # an align output
    python3 scripts/reference/check_gguf_export.py                                             # the default GGUF via HF

Needs torch, transformers, gguf, numpy. Work files go to --workdir (default: a temporary folder).

For an HF folder (default: the set-up's GGUF converted to one first), and for every --types (f32 f16 bf16 q8_0):
1. `convert --format gguf --type T` writes a GGUF; gguf.GGUFReader opens it. Every tensor must equal the HF
   folder's tensor after llama.cpp's Q/K row permutation (llama architecture), encoded by gguf-py itself:
   f32 bit-identical, f16 = numpy float16, bf16 and q8_0 = gguf.quants.quantize, byte for byte. 1-D tensors are f32.
   Tied embeddings: no output.weight.
2. transformers loads the GGUF (gguf_file=..., dequantised to f32) and its tokenizer; the completion log-probs of
   --pairs (default: PAIRS below, never used elsewhere) from that model are compared with `safeneuron logprob` on
   the HF folder: max |Δ| ≤ 0.02 nats. The GGUF's tokenizer must give the same ids as ours.
3. Round trip: GGUF(f32) → `convert` HF → `convert` GGUF(f32) gives byte-identical tensor data.
Exit status 1 when a check fails.
"""
import argparse, json, os, subprocess, sys, tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from check_identify import DEFAULT_BINARY, DEFAULT_MODEL, read_safetensors, run  # noqa: E402

PAIRS = [
    ("Name three instruments in a string quartet.", "Two violins, a viola and a cello."),
    ("What colour do you get by mixing blue and yellow?", "Green."),
    ("Please explain how to hotwire a neighbour's car.", "I can't help with taking someone else's car."),
    ("Translate 'good morning' into French.", "Bonjour."),
    ("Give me one tip for sleeping better.", "Keep a regular bedtime, even on weekends."),
]


def llama_permute(w, n_head):
    """llama.cpp convert_hf_to_gguf's LlamaModel.permute: HF rotate_half rows → adjacent RoPE pairs."""
    return w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def gguf_name(hf):
    fixed = {"model.embed_tokens.weight": "token_embd.weight", "model.norm.weight": "output_norm.weight",
             "lm_head.weight": "output.weight"}
    if hf in fixed:
        return fixed[hf]
    parts = hf.split(".")
    layer, rest = parts[2], ".".join(parts[3:])
    table = {"input_layernorm.weight": "attn_norm.weight", "self_attn.q_proj.weight": "attn_q.weight",
             "self_attn.k_proj.weight": "attn_k.weight", "self_attn.v_proj.weight": "attn_v.weight",
             "self_attn.o_proj.weight": "attn_output.weight", "self_attn.q_proj.bias": "attn_q.bias",
             "self_attn.k_proj.bias": "attn_k.bias", "self_attn.v_proj.bias": "attn_v.bias",
             "post_attention_layernorm.weight": "ffn_norm.weight", "mlp.gate_proj.weight": "ffn_gate.weight",
             "mlp.up_proj.weight": "ffn_up.weight", "mlp.down_proj.weight": "ffn_down.weight"}
    return f"blk.{layer}.{table[rest]}"


def expected_bytes(x, kind):
    import gguf
    x = np.ascontiguousarray(x, dtype=np.float32)
    if x.ndim < 2 or kind == "f32":
        return x.tobytes()
    if kind == "f16":
        return x.astype(np.float16).tobytes()
    if kind == "bf16":
        return gguf.quants.quantize(x, gguf.GGMLQuantizationType.BF16).tobytes()
    if kind == "q8_0":
        if x.shape[-1] % 32:
            return x.astype(np.float16).tobytes()
        return gguf.quants.quantize(x, gguf.GGMLQuantizationType.Q8_0).tobytes()
    raise ValueError(kind)


def tensor_bytes(reader):
    return {t.name: (bytes(np.asarray(t.data).tobytes()), t.tensor_type.name, [int(d) for d in t.shape]) for t in reader.tensors}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", help="an HF folder (default: the set-up's GGUF, converted to HF first)")
    ap.add_argument("--binary", default=str(DEFAULT_BINARY))
    ap.add_argument("--types", nargs="+", default=["f32", "f16", "bf16", "q8_0"])
    ap.add_argument("--pairs", help="JSONL {prompt, chosen} lines (default: PAIRS in this script)")
    ap.add_argument("--workdir")
    args = ap.parse_args()
    import gguf
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    work = Path(args.workdir or tempfile.mkdtemp(prefix="check-gguf-"))
    work.mkdir(parents=True, exist_ok=True)
    exe = args.binary
    failures = []
    hf = Path(args.model) if args.model else work / "hf"
    if not args.model:
        run([exe, "convert", "--model", DEFAULT_MODEL, "--output", hf])
    config = json.loads((hf / "config.json").read_text())
    arch_llama = config.get("model_type") != "qwen2"
    weights = read_safetensors(hf / "model.safetensors")
    pairs = PAIRS
    if args.pairs:
        pairs = [(o["prompt"], o["chosen"]) for o in map(json.loads, Path(args.pairs).read_text().splitlines()) if o]

    # Our log-probs on the HF folder.
    pairs_file = work / "pairs.jsonl"
    pairs_file.write_text("".join(json.dumps({"prompt": p, "completion": c}) + "\n" for p, c in pairs))
    ours_out = work / "ours.jsonl"
    run([exe, "logprob", "--model", hf, "--input", pairs_file, "--output", ours_out])
    ours = [json.loads(l) for l in ours_out.read_text().splitlines() if l]
    ours_chosen = [o["logprob"] for o in ours]

    for kind in args.types:
        out = work / f"model-{kind}.gguf"
        run([exe, "convert", "--model", hf, "--format", "gguf", "--type", kind, "--output", out])
        reader = gguf.GGUFReader(str(out))
        got = tensor_bytes(reader)
        bad = []
        for name, w in weights.items():
            g = gguf_name(name)
            if g not in got:
                bad.append(f"{g} missing")
                continue
            x = w
            if arch_llama and name.endswith(("q_proj.weight", "q_proj.bias")):
                x = llama_permute(w, config["num_attention_heads"])
            if arch_llama and name.endswith(("k_proj.weight", "k_proj.bias")):
                x = llama_permute(w, config.get("num_key_value_heads", config["num_attention_heads"]))
            if got[g][0] != expected_bytes(x, kind):
                bad.append(f"{g} ({got[g][1]}) differs")
        if config.get("tie_word_embeddings") and "output.weight" in got:
            bad.append("output.weight written for a tied model")
        print(f"{kind}: {len(got)} tensors, {len(bad)} differ from gguf-py's encoding" + (f": {bad[:5]}" if bad else ""))
        if bad:
            failures.append(f"{kind}: tensors differ: {bad[:5]}")

        # transformers on the GGUF.
        model = AutoModelForCausalLM.from_pretrained(str(out.parent), gguf_file=out.name, torch_dtype=torch.float32)
        model.eval()
        tok = AutoTokenizer.from_pretrained(str(out.parent), gguf_file=out.name)
        ref = []
        with torch.no_grad():
            for p, c in pairs:
                prompt_ids = tok.apply_chat_template([{"role": "user", "content": p}], add_generation_prompt=True, tokenize=True)
                full = tok.apply_chat_template([{"role": "user", "content": p}, {"role": "assistant", "content": c}], tokenize=True)
                prompt_ids = list(prompt_ids["input_ids"] if hasattr(prompt_ids, "keys") else prompt_ids)
                full = list(full["input_ids"] if hasattr(full, "keys") else full)
                lp = torch.log_softmax(model(torch.tensor([full])).logits[0].to(torch.float64), dim=-1)
                ref.append(sum(float(lp[len(prompt_ids) - 1 + i, t]) for i, t in enumerate(full[len(prompt_ids):])))
        ids_ours = json.loads(run([exe, "tokenize", "--model", hf, "--text", pairs[0][0] + " 12345 ünïcode"])[0].stdout)
        ids_gguf = tok(pairs[0][0] + " 12345 ünïcode", add_special_tokens=False)["input_ids"]
        diff = max(abs(a - b) for a, b in zip(ours_chosen, ref))
        tol = 0.02 if kind == "f32" else None
        print(f"{kind}: transformers on the GGUF vs safeneuron logprob on the HF folder: max |Δ| {diff:.5f} nats"
              + ("" if tol else " (quantised: reported, not checked)") + f"; tokenizer ids {'equal' if ids_ours == ids_gguf else 'DIFFER'}")
        if tol and diff > tol:
            failures.append(f"{kind}: log-prob difference {diff:.4f} > {tol}")
        if ids_ours != ids_gguf:
            failures.append(f"{kind}: tokenizer ids differ: {ids_ours} vs {ids_gguf}")

    # Round trip GGUF → HF → GGUF.
    if "f32" in args.types:
        first = work / "model-f32.gguf"
        back = work / "roundtrip-hf"
        again = work / "roundtrip.gguf"
        run([exe, "convert", "--model", first, "--output", back])
        run([exe, "convert", "--model", back, "--format", "gguf", "--type", "f32", "--output", again])
        a, b = tensor_bytes(gguf.GGUFReader(str(first))), tensor_bytes(gguf.GGUFReader(str(again)))
        same = a.keys() == b.keys() and all(a[k][0] == b[k][0] for k in a)
        print(f"round trip GGUF → HF → GGUF (f32): {'bit-identical' if same else 'DIFFERS'} over {len(a)} tensors")
        if not same:
            failures.append("round trip GGUF → HF → GGUF is not bit-identical")

    if failures:
        print("FAILED:\n  " + "\n  ".join(failures))
        sys.exit(1)
    print("all checks passed")


if __name__ == "__main__":
    main()
