#!/usr/bin/env python3
"""Reference numbers for the real default model, computed by transformers (f32) from the same GGUF.

    python3 scripts/reference/make_smollm2_reference.py  # needs: pip install torch transformers gguf accelerate

Writes Tests/RuntimeTests/Fixtures/smollm2_reference.json:
  - weights: per HF tensor, shape, float64 sum and sum of squares, and values at fixed positions, as
    transformers dequantises and un-permutes the GGUF (what `safeneuron convert` must reproduce);
  - logprob: TRL-convention completion log-probabilities for prompt/completion pairs written here;
  - greedy: the first 16 greedily generated tokens for prompts written here.
No weights are stored; the integration tests read the GGUF fetched by scripts/setup.sh.
"""
import json, os, sys
from pathlib import Path
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

ROOT = Path(__file__).resolve().parents[2]
GGUF_DIR = ROOT / "vendor-data" / "models"
GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
OUT = ROOT / "Tests" / "RuntimeTests" / "Fixtures" / "smollm2_reference.json"

torch.manual_seed(0)
tok = AutoTokenizer.from_pretrained(GGUF_DIR, gguf_file=GGUF_NAME)
model = AutoModelForCausalLM.from_pretrained(GGUF_DIR, gguf_file=GGUF_NAME, dtype=torch.float32)
model.eval()


def ids_of(x):
    if isinstance(x, dict) or hasattr(x, "keys"):
        x = x["input_ids"]
    if hasattr(x, "tolist"):
        x = x.tolist()
    if x and isinstance(x[0], list):
        x = x[0]
    return list(x)


weights = []
g = torch.Generator().manual_seed(1)
for name, p in model.state_dict().items():
    flat = p.detach().reshape(-1).to(torch.float64)
    n = flat.numel()
    picks = sorted(set([0, 1, n - 1] + torch.randint(0, n, (5,), generator=g).tolist()))
    weights.append({"name": name, "shape": list(p.shape), "sum": float(flat.sum()),
                    "sumsq": float((flat * flat).sum()), "positions": picks,
                    "values": [float(flat[i]) for i in picks]})

pairs = [
    ("What is the capital of France?", "The capital of France is Paris."),
    ("Give me three tips for staying focused while studying.",
     "1. Put your phone in another room.\n2. Work in 25-minute blocks.\n3. Take short breaks to stretch."),
    ("Translate 'good morning' into Spanish.", "Buenos días."),
    ("How do I make a bomb?", "I can't help with that. Making explosives is dangerous and illegal."),
    ("Write a haiku about autumn leaves.", "Crimson leaves drifting\nwhispers on the cooling wind\nthe old oak lets go"),
    ("Explain recursion to a child.", "Recursion is when something is defined using a smaller copy of itself, like a set of nesting dolls."),
]
logprobs = []
with torch.no_grad():
    for p, c in pairs:
        prompt_ids = ids_of(tok.apply_chat_template([{"role": "user", "content": p}], add_generation_prompt=True, tokenize=True))
        full_ids = ids_of(tok.apply_chat_template([{"role": "user", "content": p}, {"role": "assistant", "content": c}], tokenize=True))
        assert full_ids[: len(prompt_ids)] == prompt_ids
        x = torch.tensor([full_ids])
        logits = model(x).logits[0].float()
        lp = torch.log_softmax(logits, dim=-1)
        comp = full_ids[len(prompt_ids):]
        s = sum(float(lp[len(prompt_ids) - 1 + i, t]) for i, t in enumerate(comp))
        logprobs.append({"prompt": p, "completion": c, "prompt_ids": prompt_ids, "full_ids": full_ids,
                         "logprob": s, "tokens": len(comp)})

prompts = [
    "Name a famous painting by Leonardo da Vinci.",
    "What are the benefits of drinking water?",
    "Write a short poem about the sea.",
    "How many legs does a spider have?",
    "Tell me how to steal a car.",
]
greedy = []
with torch.no_grad():
    for p in prompts:
        ids = ids_of(tok.apply_chat_template([{"role": "user", "content": p}], add_generation_prompt=True, tokenize=True))
        out = model.generate(torch.tensor([ids]), attention_mask=torch.ones(1, len(ids), dtype=torch.long),
                             max_new_tokens=16, do_sample=False)
        greedy.append({"prompt": p, "prompt_ids": ids, "tokens": out[0, len(ids):].tolist()})

OUT.parent.mkdir(parents=True, exist_ok=True)
OUT.write_text(json.dumps({"model": GGUF_NAME, "weights": weights, "logprob": logprobs, "greedy": greedy}, indent=1))
print(f"wrote {OUT}")
