#!/usr/bin/env python3
"""Reference fixtures for Gemma 3 text models (tiny, random, f32), beside the Llama-family ones.

Run from the repository root (CPU, deterministic, seeded; needs torch + transformers 5):

    python3 scripts/reference/make_gemma3_fixtures.py

Writes, with the same layouts and helpers as the Llama-family scripts (so the same Swift tests read them):
  Tests/TransformerTests/Fixtures/gemma3/            logits, ablated logits, down_proj taps, greedy generation
  Tests/TransformerTests/Fixtures/gemma3_softcap/    the same with final-logit soft-capping and linear RoPE scaling
                                                     on the full-attention layers; its config also sets
                                                     attn_logit_softcapping, which transformers' Gemma 3 reads and
                                                     never applies (only Gemma 2's attention passes it on)
  Tests/TransformerTests/Fixtures/training/gemma3/          DPO-loss gradients with a frozen, ablated neuron set
  Tests/TransformerTests/Fixtures/training/gemma3_softcap/  the same with final-logit soft-capping
Each model has three layers (sliding, full, sliding), a window of 4 keys and sequences up to 13 tokens, so
both kinds of layer and sequences longer than the window are exercised; query_pre_attn_scalar differs from
head_dim so the attention scale is checked too. Greedy generation runs through transformers' KV cache, whose
sliding layers the Swift cache must match.
"""
import os
import sys

import torch
from transformers import Gemma3ForCausalLM, Gemma3TextConfig

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import make_training_fixtures as training  # noqa: E402
import make_transformer_fixtures as inference  # noqa: E402

LAYER_TYPES = ["sliding_attention", "full_attention", "sliding_attention"]


def gemma3_kwargs(vocab, softcap):
    kw = dict(vocab_size=vocab, hidden_size=64, intermediate_size=96, num_hidden_layers=3, num_attention_heads=4,
              num_key_value_heads=2, head_dim=16, rms_norm_eps=1e-6, max_position_embeddings=256,
              sliding_window=4, layer_types=LAYER_TYPES, query_pre_attn_scalar=20, tie_word_embeddings=True,
              bos_token_id=None, eos_token_id=None, pad_token_id=None, attn_implementation="eager")
    if softcap:
        kw.update(final_logit_softcapping=5.0, attn_logit_softcapping=3.0,
                  rope_parameters={"full_attention": {"rope_type": "linear", "factor": 2.0, "rope_theta": 1000000.0},
                                   "sliding_attention": {"rope_type": "default", "rope_theta": 10000.0}})
    return kw


def main():
    torch.manual_seed(0)
    for name, softcap in [("gemma3", False), ("gemma3_softcap", True)]:
        inference.make(name, Gemma3ForCausalLM(Gemma3TextConfig(**gemma3_kwargs(inference.VOCAB, softcap))))
    for name, seed, softcap in [("gemma3", 21, False), ("gemma3_softcap", 22, True)]:
        kw = gemma3_kwargs(training.COMMON["vocab_size"], softcap)
        training.build(name, Gemma3TextConfig, Gemma3ForCausalLM, kw, seed=seed,
                       neurons=[[0, 3], [1, 50], [2, 7], [2, 8]], rpo_alpha=None, optim=False)
    print("ok")


if __name__ == "__main__":
    main()
