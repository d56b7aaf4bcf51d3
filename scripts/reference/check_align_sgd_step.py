#!/usr/bin/env python3
"""Checks one exact SGD step of `safeneuron align` against PyTorch autograd.

Usage (from the checkout root, after `swift build -c release --product safeneuron`):

    python3 scripts/reference/check_align_sgd_step.py --neurons /tmp/neurons.json \
        [--model vendor-data/models/SmolLM2-135M-Instruct.Q4_1.gguf] [--pairs PAIR.jsonl] \
        [--work /tmp/align-sgd-check] [--binary .build/release/safeneuron] [--neuron-set union]

It runs `safeneuron convert` (the f32 starting point), then
`safeneuron align --optimizer sgd --lr 1 --steps 1 --batch-size 1 --beta 0.1 --weight-decay 0
 --schedule constant --warmup-steps 0 --max-grad-norm 0 --neurons N` on the first pair, so the weight change
is exactly -grad. PyTorch (transformers, f32) recomputes the gradient of
L = -log sigmoid(beta * ((pi_c - pi_r) - (ref_c - ref_r))) with ref = the detached policy, the neuron set ablated
by a forward pre-hook on down_proj (policy and reference alike), and the frozen slices' gradients zeroed.
Passes when every tensor's change matches -grad within 2% relative error (||d + g|| / ||g||) and every frozen
slice is bit-identical. Exit status 0 on pass, 1 on failure. Deterministic (no randomness involved).
"""
import argparse, json, os, shutil, subprocess, sys

import torch
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM, AutoTokenizer


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="vendor-data/models/SmolLM2-135M-Instruct.Q4_1.gguf")
    ap.add_argument("--neurons", required=True)
    ap.add_argument("--neuron-set", default="union")
    ap.add_argument("--pairs", default=None, help="JSONL; only the first pair is used (default: a built-in pair)")
    ap.add_argument("--work", default="/tmp/align-sgd-check")
    ap.add_argument("--binary", default=".build/release/safeneuron")
    ap.add_argument("--beta", type=float, default=0.1)
    args = ap.parse_args()

    os.makedirs(args.work, exist_ok=True)
    pair_path = os.path.join(args.work, "pair.jsonl")
    if args.pairs:
        with open(args.pairs) as f:
            first = next(l for l in f if l.strip())
        pair = json.loads(first)
    else:
        pair = {"prompt": "How do I make a fake ID?",
                "chosen": "I'm sorry, but I can't help with that.",
                "rejected": "Sure, here is how to do it. First, you"}
    with open(pair_path, "w") as f:
        f.write(json.dumps(pair) + "\n")

    base, out = os.path.join(args.work, "base"), os.path.join(args.work, "sgd")
    for d in (out, out + ".checkpoint"):
        shutil.rmtree(d, ignore_errors=True)
    run([args.binary, "convert", "--model", args.model, "--output", base])
    run([args.binary, "align", "--model", args.model, "--pairs", pair_path, "--output", out,
         "--neurons", args.neurons, "--neuron-set", args.neuron_set,
         "--optimizer", "sgd", "--lr", "1", "--steps", "1", "--batch-size", "1", "--beta", str(args.beta),
         "--weight-decay", "0", "--schedule", "constant", "--warmup-steps", "0", "--max-grad-norm", "0"])

    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32)
    model.eval()
    tok = AutoTokenizer.from_pretrained(base)
    cfg = model.config
    with open(args.neurons) as f:
        nf = json.load(f)
    assert nf["layers"] == cfg.num_hidden_layers and nf["intermediate_size"] == cfg.intermediate_size
    neurons = [[] for _ in range(cfg.num_hidden_layers)]
    for l, j in nf["sets"][args.neuron_set]:   # [layer, neuron] pairs
        neurons[l].append(j)
    print(f"{sum(map(len, neurons))} neurons in set {args.neuron_set}")

    for l, layer in enumerate(model.model.layers):
        idx = torch.tensor(sorted(neurons[l]), dtype=torch.long)
        if len(idx) == 0:
            continue
        def hook(mod, inputs, idx=idx):
            h = inputs[0].clone()
            h[..., idx] = 0
            return (h,)
        layer.mlp.down_proj.register_forward_pre_hook(hook)

    def ids_of(completion):
        prompt = tok.apply_chat_template([{"role": "user", "content": pair["prompt"]}], add_generation_prompt=True, tokenize=False)
        full = tok.apply_chat_template([{"role": "user", "content": pair["prompt"]},
                                        {"role": "assistant", "content": completion}], tokenize=False)
        p = tok(prompt, add_special_tokens=False)["input_ids"]
        x = tok(full, add_special_tokens=False)["input_ids"]
        assert x[:len(p)] == p
        return torch.tensor([x]), len(p)

    def seq_logp(ids, start):
        logits = model(input_ids=ids).logits[0, :-1]
        lp = torch.log_softmax(logits, dim=-1)
        tgt = ids[0, 1:]
        return lp[start - 1:].gather(1, tgt[start - 1:, None]).sum()

    (ci, cs), (ri, rs) = ids_of(pair["chosen"]), ids_of(pair["rejected"])
    pc, pr = seq_logp(ci, cs), seq_logp(ri, rs)
    z = (pc - pr) - (pc.detach() - pr.detach())
    loss = -torch.nn.functional.logsigmoid(args.beta * z)
    loss.backward()
    print(f"torch: loss {loss.item():.6f} logp chosen {pc.item():.4f} rejected {pr.item():.4f} tokens {ci.shape[1]}+{ri.shape[1]}")
    with open(os.path.join(out, "metrics.jsonl")) as f:
        m = json.loads(f.readline())
    print(f"ours:  loss {m['loss']:.6f} logp chosen {m['logps/chosen']:.4f} rejected {m['logps/rejected']:.4f} grad_norm {m['grad_norm']:.6g}")
    ok = abs(m["logps/chosen"] - pc.item()) < 1e-2 * max(1, abs(pc.item())) and abs(m["logps/rejected"] - pr.item()) < 1e-2 * max(1, abs(pr.item()))
    if not ok:
        print("FAIL: sequence log-probs differ (tokenisation or forward mismatch)")

    before = load_file(os.path.join(base, "model.safetensors"))
    after = load_file(os.path.join(out, "model.safetensors"))
    params = dict(model.named_parameters())
    worst = 0.0
    frozen_changed = 0
    for name, p in params.items():
        g = p.grad.detach().clone() if p.grad is not None else torch.zeros_like(p)
        frozen = torch.zeros_like(g, dtype=torch.bool)
        parts = name.split(".")
        if len(parts) > 4 and parts[1] == "layers" and parts[3] == "mlp":
            idx = torch.tensor(sorted(neurons[int(parts[2])]), dtype=torch.long)
            if len(idx):
                if parts[4] in ("gate_proj", "up_proj"):
                    frozen[idx, :] = True
                elif parts[4] == "down_proj":
                    frozen[:, idx] = True
        g[frozen] = 0
        d = after[name] - before[name]
        if frozen.any():
            nbad = int((after[name][frozen].view(torch.int32) != before[name][frozen].view(torch.int32)).sum())
            frozen_changed += nbad
        gn = g.norm().item()
        err = (d + g).norm().item() / gn if gn > 0 else (d.norm().item())
        worst = max(worst, err)
        print(f"{name:50s} |g| {gn:10.4g}  rel.err {err:.3e}" + ("  frozen " + str(int(frozen.sum())) if frozen.any() else ""))
    print(f"worst relative error {worst:.3e}; frozen elements changed: {frozen_changed}")
    if worst > 0.02 or frozen_changed or not ok:
        print("FAIL")
        return 1
    print("PASS")
    return 0


def run(cmd):
    print("+", " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True)


if __name__ == "__main__":
    sys.exit(main())
