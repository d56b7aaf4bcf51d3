#!/usr/bin/env python3
"""Reference fixtures for Tests/TransformerTests (tiny random Llama-family models, f32).

Run from the repository root (deterministic, seeded; needs torch + transformers, CPU only):

    python3 scripts/reference/make_transformer_fixtures.py

Writes Tests/TransformerTests/Fixtures/<name>/ for three models:
  tied         LlamaForCausalLM, tied embeddings, default RoPE
  llama3       LlamaForCausalLM, untied LM head, `llama3` rope scaling (all three frequency bands hit)
  qwen2        Qwen2ForCausalLM, q/k/v biases, untied
Each folder holds config.json + model.safetensors (save_pretrained, f32) and manifest.json that describes
raw little-endian f32 .bin files:
  logits.bin        per-sequence logits [len × vocab], sequences concatenated in batch order
  ablated.bin       same batch with the manifest's neuron set zeroed at every mlp.down_proj input
  tap.bin           the (ablated) down_proj inputs [layers × totalTokens × intermediate]
plus greedy generations (model.generate, do_sample=False, 12 new tokens, no eos) and completion logprob sums.
HF reference runs one sequence at a time (no padding), eager attention, positions from 0.
"""
import json
import os
import struct

import torch
from transformers import LlamaConfig, LlamaForCausalLM, Qwen2Config, Qwen2ForCausalLM

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
OUT = os.path.join(ROOT, "Tests", "TransformerTests", "Fixtures")

VOCAB = 300
COMMON = dict(vocab_size=VOCAB, hidden_size=64, intermediate_size=96, num_hidden_layers=3,
              num_attention_heads=4, num_key_value_heads=2, head_dim=16, max_position_embeddings=256,
              bos_token_id=None, eos_token_id=None, pad_token_id=None)

LENGTHS = [7, 1, 13, 4, 10]
STARTS = [3, 1, 6, 2, 1]
PROMPT_LENGTHS = [5, 8]
NEW_TOKENS = 12
ABLATION = {0: [1, 5, 17], 2: [0, 40, 41, 95]}


def randomize(model, gen):
    # HF's init (std 0.02) makes near-uniform logits; larger weights give sharp, tie-free references.
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("norm.weight"):
                p.copy_(1.0 + 0.2 * torch.randn(p.shape, generator=gen))
            elif name.endswith(".bias"):
                p.copy_(0.3 * torch.randn(p.shape, generator=gen))
            elif "embed_tokens" in name:
                p.copy_(torch.randn(p.shape, generator=gen))
            else:
                fan_in = p.shape[1]
                p.copy_(torch.randn(p.shape, generator=gen) * (1.5 / fan_in ** 0.5))


def write_f32(path, tensors):
    with open(path, "wb") as f:
        for t in tensors:
            f.write(t.detach().to(torch.float32).contiguous().numpy().astype("<f4").tobytes())


def make(name, model):
    folder = os.path.join(OUT, name)
    os.makedirs(folder, exist_ok=True)
    gen = torch.Generator().manual_seed(1234 + len(name))
    randomize(model, gen)
    model.eval()
    model.save_pretrained(folder, safe_serialization=True)
    # save_pretrained may add a generation_config.json; tests only need config.json + weights.
    gc = os.path.join(folder, "generation_config.json")
    if os.path.exists(gc):
        os.remove(gc)

    seqs = [torch.randint(0, VOCAB, (n,), generator=gen).tolist() for n in LENGTHS]
    layers = model.model.layers

    def run(ids):
        with torch.no_grad():
            return model(torch.tensor([ids]), use_cache=False).logits[0]

    logits = [run(s) for s in seqs]
    write_f32(os.path.join(folder, "logits.bin"), logits)

    taps = [[] for _ in layers]
    current = {}

    def hook_for(layer_index):
        def hook(module, args):
            x = args[0].clone()
            for j in ABLATION.get(layer_index, []):
                x[..., j] = 0
            taps[layer_index].append(x[0].clone())
            return (x,)
        return hook

    handles = [layer.mlp.down_proj.register_forward_pre_hook(hook_for(i)) for i, layer in enumerate(layers)]
    ablated = [run(s) for s in seqs]
    logprobs_ablated = [completion_logprob(run(s), s, st) for s, st in zip(seqs, STARTS)]
    for h in handles:
        h.remove()
    write_f32(os.path.join(folder, "ablated.bin"), ablated)
    # Each sequence ran twice under the hook (logits, then logprobs); keep the first pass.
    write_f32(os.path.join(folder, "tap.bin"), [torch.cat(t[: len(seqs)], 0) for t in taps])

    logprobs = [completion_logprob(l, s, st) for l, s, st in zip(logits, seqs, STARTS)]

    prompts = [torch.randint(0, VOCAB, (n,), generator=gen).tolist() for n in PROMPT_LENGTHS]
    greedy = []
    for p in prompts:
        with torch.no_grad():
            out = model.generate(torch.tensor([p]), max_new_tokens=NEW_TOKENS, do_sample=False,
                                 eos_token_id=None, pad_token_id=0)
        new = out[0, len(p):].tolist()
        assert len(new) == NEW_TOKENS, new
        greedy.append(new)

    manifest = {
        "sequences": seqs, "completion_starts": STARTS,
        "logprobs": logprobs, "logprobs_ablated": logprobs_ablated,
        "ablation": {str(k): v for k, v in ABLATION.items()},
        "prompts": prompts, "greedy": greedy,
        "vocab": VOCAB, "layers": len(layers), "intermediate": model.config.intermediate_size,
    }
    with open(os.path.join(folder, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=1)
    size = sum(os.path.getsize(os.path.join(folder, x)) for x in os.listdir(folder))
    print(f"{name}: {size / 1e6:.2f} MB")


def completion_logprob(logits, seq, start):
    lp = torch.log_softmax(logits.to(torch.float64), dim=-1)
    return float(sum(lp[t - 1, seq[t]].item() for t in range(start, len(seq))))


def main():
    torch.manual_seed(0)
    make("tied", LlamaForCausalLM(LlamaConfig(**COMMON, tie_word_embeddings=True, rms_norm_eps=1e-5,
                                              rope_theta=10000.0, attn_implementation="eager")))
    make("llama3", LlamaForCausalLM(LlamaConfig(
        **COMMON, tie_word_embeddings=False, rms_norm_eps=1e-5,
        # original_max 64 with head_dim 16 and theta 1e4 puts wavelengths in all three llama3 bands.
        rope_parameters={"rope_type": "llama3", "rope_theta": 10000.0, "factor": 8.0, "low_freq_factor": 1.0,
                         "high_freq_factor": 4.0, "original_max_position_embeddings": 64},
        attn_implementation="eager")))
    make("qwen2", Qwen2ForCausalLM(Qwen2Config(**COMMON, tie_word_embeddings=False, rms_norm_eps=1e-6,
                                               rope_theta=1000000.0, attn_implementation="eager")))


if __name__ == "__main__":
    main()
