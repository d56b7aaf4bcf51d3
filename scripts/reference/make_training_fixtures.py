#!/usr/bin/env python3
"""Reference fixtures for the training engine and DPO (Tests/TransformerTests/Fixtures/training/).

Run from the repository root (CPU, deterministic, seeded):
    python3 scripts/reference/make_training_fixtures.py

For each tiny random model (llama_tied with llama3 RoPE scaling, llama_untied, qwen2_bias with q/k/v biases)
it writes config.json, model.safetensors (f32), batch.json (preference triples as token ids, the frozen+ablated
neuron set, loss settings and expected log-probs/loss) and grads.bin + grads.json: PyTorch autograd gradients
of the TRL-style DPO loss (sigmoid, beta 0.1, reference log-probs from the same ablated model, optional RPO
alpha). Ablation zeroes the down_proj input columns through a forward pre-hook; frozen slices get their
gradient zeroed (gate/up rows, down columns) as the Swift optimizer mask does. For llama_untied it also writes
the expected weights of layer 0, model.norm and lm_head after one AdamW step (weight decay, norm/bias excluded
from decay like HF Trainer, clip_grad_norm_) and after one SGD step, frozen slices restored (= never updated).
schedules.json holds transformers' warmup schedules evaluated at several steps.
"""
import json, math, os, struct
import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import save_file
from transformers import LlamaConfig, LlamaForCausalLM, Qwen2Config, Qwen2ForCausalLM
from transformers import (get_cosine_schedule_with_warmup, get_linear_schedule_with_warmup,
                          get_constant_schedule_with_warmup)

OUT = os.path.join("Tests", "TransformerTests", "Fixtures", "training")
BETA = 0.1
torch.set_num_threads(1)


def write_bin(folder, stem, named):
    """Raw little-endian f32 concatenation + JSON manifest [{name, shape, offset(floats)}]."""
    entries, off, chunks = [], 0, []
    for name, t in named:
        a = t.detach().to(torch.float32).contiguous().numpy().astype("<f4")
        entries.append({"name": name, "shape": list(a.shape), "offset": off})
        off += a.size
        chunks.append(a.tobytes())
    with open(os.path.join(folder, stem + ".bin"), "wb") as f:
        for c in chunks:
            f.write(c)
    with open(os.path.join(folder, stem + ".json"), "w") as f:
        json.dump(entries, f, indent=0)


def make_examples(gen, vocab, n):
    ex = []
    for i in range(n):
        p = int(torch.randint(3, 7, (1,), generator=gen))
        prompt = torch.randint(1, vocab, (p,), generator=gen).tolist()
        c = int(torch.randint(2, 8, (1,), generator=gen))
        r = int(torch.randint(2, 8, (1,), generator=gen))
        chosen = prompt + torch.randint(1, vocab, (c,), generator=gen).tolist()
        rejected = prompt + torch.randint(1, vocab, (r,), generator=gen).tolist()
        ex.append({"prompt": prompt, "chosen": chosen, "rejected": rejected})
    return ex


def seq_logp(model, ids, start):
    x = torch.tensor([ids])
    logits = model(input_ids=x).logits[0].float()
    lp = F.log_softmax(logits[:-1], dim=-1)
    tgt = x[0, 1:]
    tok = lp.gather(1, tgt[:, None])[:, 0]
    return tok[start - 1:].sum(), len(ids) - start


def build(name, cfg_cls, model_cls, cfg_kwargs, seed, neurons, rpo_alpha, optim):
    torch.manual_seed(seed)
    cfg = cfg_cls(**cfg_kwargs)
    model = model_cls(cfg).float().eval()
    with torch.no_grad():  # spread norm weights and biases so their gradients are exercised
        for n, p in model.named_parameters():
            if "norm" in n:
                p.copy_(1.0 + 0.1 * torch.randn_like(p))
            elif n.endswith(".bias"):
                p.copy_(0.1 * torch.randn_like(p))
            else:
                p.copy_(0.08 * torch.randn_like(p))
    folder = os.path.join(OUT, name)
    os.makedirs(folder, exist_ok=True)
    cfg.save_pretrained(folder)
    sd = {k: v.contiguous() for k, v in model.state_dict().items()}
    if cfg.tie_word_embeddings:
        sd.pop("lm_head.weight", None)
    save_file(sd, os.path.join(folder, "model.safetensors"))

    per_layer = {}
    for l, j in neurons:
        per_layer.setdefault(l, []).append(j)
    hooks = []
    for l, js in per_layer.items():
        idx = torch.tensor(js)
        def pre(mod, args, idx=idx):
            h = args[0].clone()
            h[..., idx] = 0
            return (h,)
        hooks.append(model.model.layers[l].mlp.down_proj.register_forward_pre_hook(pre))

    gen = torch.Generator().manual_seed(seed + 1)
    examples = make_examples(gen, cfg.vocab_size, 3)
    with torch.no_grad():
        ref = [(seq_logp(model, e["chosen"], len(e["prompt"]))[0].item(),
                seq_logp(model, e["rejected"], len(e["prompt"]))[0].item()) for e in examples]
    model.zero_grad()
    losses, pcs, prs, nll_sum, nll_cnt = [], [], [], 0.0, 0
    for e, (rc, rr) in zip(examples, ref):
        pc, nc = seq_logp(model, e["chosen"], len(e["prompt"]))
        pr, _ = seq_logp(model, e["rejected"], len(e["prompt"]))
        z = (pc - pr) - (rc - rr)
        losses.append(-F.logsigmoid(BETA * z))
        pcs.append(pc); prs.append(pr)
        nll_sum = nll_sum - pc
        nll_cnt += nc
    loss = torch.stack(losses).mean()
    if rpo_alpha is not None:
        loss = loss + rpo_alpha * nll_sum / nll_cnt
    loss.backward()

    def frozen_mask(n, p):
        m = torch.zeros_like(p, dtype=torch.bool)
        for l, js in per_layer.items():
            for j in js:
                if n == f"model.layers.{l}.mlp.gate_proj.weight" or n == f"model.layers.{l}.mlp.up_proj.weight":
                    m[j, :] = True
                if n == f"model.layers.{l}.mlp.down_proj.weight":
                    m[:, j] = True
        return m

    named = [(n, p) for n, p in model.named_parameters()]
    masks = {n: frozen_mask(n, p) for n, p in named}
    for n, p in named:
        p.grad[masks[n]] = 0
    write_bin(folder, "grads", [(n, p.grad) for n, p in named])

    info = {"examples": examples, "beta": BETA, "rpo_alpha": rpo_alpha, "neurons": neurons,
            "ref_logps": ref, "policy_chosen_logps": [v.item() for v in pcs],
            "policy_rejected_logps": [v.item() for v in prs], "loss": loss.item()}

    if optim:
        keep = lambda n: n.startswith("model.layers.0.") or n in ("model.norm.weight", "lm_head.weight")
        orig = {n: p.detach().clone() for n, p in named}
        grads = {n: p.grad.detach().clone() for n, p in named}
        # AdamW with clipping
        max_norm = 0.5 * torch.norm(torch.stack([g.norm() for g in grads.values()])).item()
        total = torch.nn.utils.clip_grad_norm_([p for _, p in named], max_norm).item()
        decay = [p for n, p in named if not ("norm" in n or n.endswith(".bias"))]
        nodecay = [p for n, p in named if ("norm" in n or n.endswith(".bias"))]
        opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1}, {"params": nodecay, "weight_decay": 0.0}],
                                lr=1e-3, betas=(0.9, 0.999), eps=1e-8)
        opt.step()
        with torch.no_grad():
            for n, p in named:
                p[masks[n]] = orig[n][masks[n]]
        write_bin(folder, "adamw", [(n, p) for n, p in named if keep(n)])
        info["adamw"] = {"lr": 1e-3, "weight_decay": 0.1, "max_grad_norm": max_norm, "grad_norm": total}
        # SGD from the original weights and unclipped grads
        with torch.no_grad():
            for n, p in named:
                p.copy_(orig[n]); p.grad.copy_(grads[n])
        opt = torch.optim.SGD([p for _, p in named], lr=0.1)
        opt.step()
        with torch.no_grad():
            for n, p in named:
                p[masks[n]] = orig[n][masks[n]]
        write_bin(folder, "sgd", [(n, p) for n, p in named if keep(n)])
        info["sgd"] = {"lr": 0.1}
    with open(os.path.join(folder, "batch.json"), "w") as f:
        json.dump(info, f, indent=1)
    for h in hooks:
        h.remove()


COMMON = dict(vocab_size=256, hidden_size=64, intermediate_size=96, num_hidden_layers=2, num_attention_heads=4,
              num_key_value_heads=2, head_dim=16, rms_norm_eps=1e-5, max_position_embeddings=128)


def main():
    common = COMMON
    build("llama_tied", LlamaConfig, LlamaForCausalLM,
          dict(common, tie_word_embeddings=True, rope_theta=500000.0,
               rope_scaling={"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                             "original_max_position_embeddings": 16}),
          seed=11, neurons=[[0, 3], [0, 50], [1, 7]], rpo_alpha=None, optim=False)
    build("llama_untied", LlamaConfig, LlamaForCausalLM, dict(common, tie_word_embeddings=False, rope_theta=10000.0),
          seed=12, neurons=[[0, 1], [0, 95], [1, 40], [1, 41]], rpo_alpha=None, optim=True)
    build("qwen2_bias", Qwen2Config, Qwen2ForCausalLM,
          dict(common, tie_word_embeddings=False, rope_theta=1000000.0, use_sliding_window=False),
          seed=13, neurons=[[1, 10], [1, 20]], rpo_alpha=0.5, optim=False)

    # Warmup schedules (multiplier of the base lr at each scheduler step).
    p = torch.nn.Parameter(torch.zeros(1))
    sched = {}
    for kind, fn in [("cosine", get_cosine_schedule_with_warmup), ("linear", get_linear_schedule_with_warmup),
                     ("constant", None)]:
        opt = torch.optim.SGD([p], lr=1.0)
        if kind == "constant":
            s = get_constant_schedule_with_warmup(opt, num_warmup_steps=3)
        else:
            s = fn(opt, num_warmup_steps=3, num_training_steps=20)
        vals = []
        for _ in range(22):
            vals.append(opt.param_groups[0]["lr"])
            opt.step(); s.step()
        sched[kind] = {"warmup": 3, "total": 20, "lr": vals}
    with open(os.path.join(OUT, "schedules.json"), "w") as f:
        json.dump(sched, f, indent=1)
    print("ok")


if __name__ == "__main__":
    main()
