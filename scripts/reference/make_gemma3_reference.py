#!/usr/bin/env python3
"""Reference numbers for Tests/RuntimeTests/Gemma3IntegrationTests (the real google/gemma-3-270m GGUF).

    scripts/setup.sh --with gemma3
    python3 scripts/reference/make_gemma3_reference.py

transformers 5 loads vendor-data/models/gemma-3-270m-q4_k_m.gguf in f32 (dequantised as it does, norms shifted
back) and writes Tests/RuntimeTests/Fixtures/gemma3_reference.json: token ids of the texts of
check_gguf_model.py (written for these checks only), TRL-style completion log-probs of its pairs, the greedy
continuations (16 new token ids) of its prompts (one longer than the sliding window), and per weight tensor its
shape, sum and a few sampled values.
"""
import json, sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from check_gguf_model import DEFAULT_MODEL, PAIRS, PROMPTS, TEXTS  # noqa: E402
from check_identify import ROOT, load_model, template_ids  # noqa: E402

OUT = ROOT / "Tests" / "RuntimeTests" / "Fixtures" / "gemma3_reference.json"
NEW = 16


@torch.no_grad()
def main():
    tok, model = load_model(DEFAULT_MODEL)
    texts = [{"text": t, "ids": tok(t).input_ids} for t in TEXTS]
    pairs = []
    for p, c in PAIRS:
        user = [{"role": "user", "content": p}]
        prompt = template_ids(tok, user, True)
        full = template_ids(tok, user + [{"role": "assistant", "content": c}], False)
        logits = model(torch.tensor([full])).logits[0].double()
        lp = torch.log_softmax(logits[:-1], dim=-1).gather(1, torch.tensor(full[1:])[:, None])[:, 0]
        pairs.append({"prompt": p, "completion": c, "full_ids": full, "start": len(prompt),
                      "logprob": lp[len(prompt) - 1:].sum().item()})
    stops = [tok.eos_token_id, tok.convert_tokens_to_ids("<end_of_turn>")]
    greedy = []
    for p in PROMPTS:
        ids = tok(p).input_ids
        out = model.generate(torch.tensor([ids]), max_new_tokens=NEW, do_sample=False, eos_token_id=stops, pad_token_id=0)
        greedy.append({"prompt_ids": ids, "new_ids": out[0, len(ids):].tolist()})
    weights = []
    g = torch.Generator().manual_seed(0)
    for name, t in model.state_dict().items():
        if name == "lm_head.weight" and model.config.tie_word_embeddings:
            continue
        flat = t.detach().double().flatten()
        pos = torch.randint(0, flat.numel(), (4,), generator=g).tolist()
        weights.append({"name": name, "shape": list(t.shape), "sum": flat.sum().item(),
                        "positions": pos, "values": [flat[i].item() for i in pos]})
    OUT.write_text(json.dumps({"model": DEFAULT_MODEL.name, "texts": texts, "pairs": pairs, "greedy": greedy,
                               "weights": weights}, indent=0, ensure_ascii=False))
    print(f"wrote {OUT} ({OUT.stat().st_size / 1e3:.0f} kB)")


if __name__ == "__main__":
    main()
