#!/usr/bin/env python3
"""Same-machine reference numbers for `safeneuron bench`, with PyTorch (and llama.cpp when installed).

Usage (from the checkout root; the model is the default SmolLM2-135M-Instruct Q4_1 GGUF):
    python3 -m pip install torch transformers gguf        # once; CPU wheels are enough
    python3 -m pip install llama-cpp-python               # optional: builds llama.cpp from source (slow)
    python3 benchmarks/compare.py [--model vendor-data/models/SmolLM2-135M-Instruct.Q4_1.gguf] [--quick]

Workloads mirror the Swift ones (see benchmarks/README.md for the FLOP formulas): f32 forward 8x128
(all logits), forward+backward 8x256 of the summed log-likelihood (no optimiser; a DPO step adds only
element-wise work), greedy generate 1x128 and 32x128 with a KV cache. Median of timed repetitions after one
warm-up; torch uses all cores (torch.get_num_threads()). llama.cpp runs the GGUF as it is (Q4_1 weights),
so its decode rate is for 4-bit weights, not f32. Prints one JSON object per workload on stdout.
"""
import argparse, json, os, statistics, sys, time

def timed(fn, reps):
    fn()
    xs = []
    for _ in range(reps):
        t = time.perf_counter(); fn(); xs.append(time.perf_counter() - t)
    return statistics.median(xs), xs

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="vendor-data/models/SmolLM2-135M-Instruct.Q4_1.gguf")
    ap.add_argument("--quick", action="store_true")
    a = ap.parse_args()
    import torch
    from transformers import AutoModelForCausalLM
    torch.manual_seed(0)
    folder, name = os.path.split(os.path.realpath(a.model))
    model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch.float32).eval()
    cfg = model.config
    reps = 2 if a.quick else 3
    common = {"engine": f"torch {torch.__version__}", "threads": torch.get_num_threads()}
    def emit(rec):
        rec.update(common); print(json.dumps(rec), flush=True)
    g = torch.Generator().manual_seed(1)
    ids = torch.randint(1000, cfg.vocab_size, (8, 128), generator=g)
    with torch.no_grad():
        med, xs = timed(lambda: model(ids).logits, reps)
    emit({"workload": "forward_8x128", "median_seconds": med, "samples": xs, "rate": 8 * 128 / med, "unit": "tok/s"})
    b, l = (4, 128) if a.quick else (8, 256)
    ids2 = torch.randint(1000, cfg.vocab_size, (b, l), generator=g)
    def step():
        model.zero_grad(set_to_none=True)
        logits = model(ids2).logits[:, :-1]
        lp = torch.log_softmax(logits, -1).gather(-1, ids2[:, 1:, None]).sum()
        lp.backward()
    med, xs = timed(step, reps)
    emit({"workload": f"train_{b}x{l}", "median_seconds": med, "samples": xs, "rate": b * l / med, "unit": "tok/s",
          "note": "forward+backward of summed log-probs, no optimiser"})
    prompt = torch.randint(1000, cfg.vocab_size, (1, 30), generator=g)
    for n, new in ([(1, 48), (32, 32)] if a.quick else [(1, 128), (32, 128)]):
        p = prompt.repeat(n, 1)
        with torch.no_grad():
            med, xs = timed(lambda: model.generate(p, attention_mask=torch.ones_like(p), max_new_tokens=new,
                                                   min_new_tokens=new, do_sample=False, pad_token_id=0), reps)
        emit({"workload": f"generate_{n}x{new}", "median_seconds": med, "samples": xs, "rate": n * new / med, "unit": "tok/s"})
    try:
        from llama_cpp import Llama
    except ImportError:
        emit({"workload": "llama.cpp", "skipped": "llama-cpp-python not installed"})
        return
    llm = Llama(model_path=os.path.realpath(a.model), n_ctx=512, n_threads=os.cpu_count(), verbose=False)
    toks = [int(t) for t in prompt[0]]
    def gen():
        llm.reset(); out = 0
        for _ in llm.generate(toks, top_k=1, temp=0):
            out += 1
            if out >= (48 if a.quick else 128): break
    med, xs = timed(gen, reps)
    emit({"workload": "generate_1x128", "engine": "llama.cpp (Q4_1 weights)", "median_seconds": med, "samples": xs,
          "rate": (48 if a.quick else 128) / med, "unit": "tok/s"})

if __name__ == "__main__":
    main()
