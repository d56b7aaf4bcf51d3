#!/usr/bin/env python3
"""Same-machine reference numbers for `safeneuron bench`: PyTorch (f32) and llama.cpp (the GGUF as it is).

Usage, from the checkout root (the model defaults to the set-up's SmolLM2-135M-Instruct Q4_1 GGUF):

    python3 benchmarks/compare.py [--quick] [--model PATH.gguf] [--output compare_results.json] [--no-install]

Missing packages are pip-installed from PyPI first (torch, transformers, gguf; llama-cpp-python, which
has no binary wheel on PyPI and compiles llama.cpp: several minutes on 2 cores, needs a C++ compiler).
If an install fails the script says so and goes on with what it has. --no-install only uses what is there.

Workloads (median of timed repetitions after one warm-up; the Swift ones are in benchmarks/README.md):
  torch  forward_8x128     f32 model(ids).logits for 8 sequences of 128 random tokens, tokens/s
  torch  train_8x256       forward + backward of the summed token log-likelihood, 8x256 (--quick: 4x128),
                           no optimiser (a DPO step adds only element-wise work), tokens/s
  torch  generate_1x128    greedy model.generate with KV cache, 1 prompt of 30 tokens, 128 new (--quick 48),
                           new tokens/s including the prompt's prefill (like `safeneuron bench`)
  llama.cpp prefill_512    eval of 512 prompt tokens in one batch, tokens/s, n_threads 1 and 2
  llama.cpp decode_1x128   greedy decode after a 30-token prompt, tokens/s of the steps after the first
                           token (prefill excluded), n_threads 1 and 2
torch uses torch.get_num_threads() threads (all cores). llama.cpp runs the GGUF's own Q4_1 weights
(4.5 bits per weight, dequantised on the fly), not f32. Prints a table; writes every record as JSON.
"""
import argparse, importlib, json, os, statistics, subprocess, sys, time


def ensure(module, packages, note=""):
    """Imports `module`, pip-installing `packages` first if it is missing. Returns (module or None, info)."""
    try:
        return importlib.import_module(module), "present"
    except ImportError:
        pass
    if ARGS.no_install:
        return None, "not installed (--no-install)"
    print(f"compare: pip install {' '.join(packages)} {note}", file=sys.stderr, flush=True)
    t = time.time()
    r = subprocess.run([sys.executable, "-m", "pip", "install", *packages], capture_output=True, text=True)
    took = time.time() - t
    if r.returncode != 0:
        tail = (r.stderr or r.stdout).strip().splitlines()[-3:]
        print(f"compare: installing {packages} failed after {took:.0f} s: {' / '.join(tail)}", file=sys.stderr)
        return None, f"pip install failed after {took:.0f} s"
    importlib.invalidate_caches()
    try:
        return importlib.import_module(module), f"pip-installed in {took:.0f} s"
    except ImportError as e:
        return None, f"installed but import failed: {e}"


def timed(fn, reps):
    fn()
    xs = []
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        xs.append(time.perf_counter() - t)
    return statistics.median(xs), xs


def load_average():
    try:
        return " ".join(open("/proc/loadavg").read().split()[:3])
    except OSError:
        return "?"


def torch_workloads(emit, model_path, quick):
    torch, info = ensure("torch", ["torch"])
    tf, info2 = ensure("transformers", ["transformers", "gguf"])
    if torch is None or tf is None:
        emit({"engine": "torch", "workload": "all", "skipped": f"torch: {info}; transformers: {info2}"})
        return
    torch.manual_seed(0)
    folder, name = os.path.split(os.path.realpath(model_path))
    model = tf.AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch.float32).eval()
    cfg = model.config
    reps = 2 if quick else 3
    common = {"engine": f"torch {torch.__version__} f32", "threads": torch.get_num_threads()}
    g = torch.Generator().manual_seed(1)

    ids = torch.randint(1000, cfg.vocab_size, (8, 128), generator=g)
    with torch.no_grad():
        med, xs = timed(lambda: model(ids).logits, reps)
    emit({**common, "workload": "forward_8x128", "median_seconds": med, "samples": xs, "rate": 8 * 128 / med, "unit": "tok/s"})

    b, l = (4, 128) if quick else (8, 256)
    ids2 = torch.randint(1000, cfg.vocab_size, (b, l), generator=g)

    def step():
        model.zero_grad(set_to_none=True)
        logits = model(ids2).logits[:, :-1]
        lp = torch.log_softmax(logits, -1).gather(-1, ids2[:, 1:, None]).sum()
        lp.backward()
    med, xs = timed(step, reps)
    emit({**common, "workload": f"train_{b}x{l}", "median_seconds": med, "samples": xs, "rate": b * l / med,
          "unit": "tok/s", "note": "forward+backward of summed log-probs, no optimiser"})
    model.zero_grad(set_to_none=True)

    new = 48 if quick else 128
    prompt = torch.randint(1000, cfg.vocab_size, (1, 30), generator=g)
    with torch.no_grad():
        med, xs = timed(lambda: model.generate(prompt, attention_mask=torch.ones_like(prompt), max_new_tokens=new,
                                               min_new_tokens=new, do_sample=False, pad_token_id=0), reps)
    emit({**common, "workload": f"generate_1x{new}", "median_seconds": med, "samples": xs, "rate": new / med,
          "unit": "tok/s", "note": "includes the 30-token prompt's prefill"})


def llama_cpp_workloads(emit, model_path, quick):
    llama_cpp, info = ensure("llama_cpp", ["llama-cpp-python"], "(compiles llama.cpp; may take several minutes)")
    if llama_cpp is None:
        emit({"engine": "llama.cpp", "workload": "all", "skipped": info})
        return
    reps = 2 if quick else 3
    new = 48 if quick else 128
    for threads in (1, 2):
        llm = llama_cpp.Llama(model_path=os.path.realpath(model_path), n_ctx=1024, n_batch=512, n_threads=threads,
                              n_threads_batch=threads, verbose=False)
        common = {"engine": f"llama.cpp (llama-cpp-python {llama_cpp.__version__}) Q4_1", "threads": threads,
                  "install": info}
        vocab = llm.n_vocab()
        toks = [1000 + (i * 7919) % (vocab - 1000) for i in range(512)]

        def prefill():
            llm.reset()
            llm.eval(toks)
        med, xs = timed(prefill, reps)
        emit({**common, "workload": "prefill_512", "median_seconds": med, "samples": xs, "rate": 512 / med, "unit": "tok/s"})

        def decode():
            llm.reset()
            n, t0 = 0, None
            for _ in llm.generate(toks[:30], top_k=1, temp=0.0, reset=True):
                n += 1
                if n == 1:
                    t0 = time.perf_counter()   # the first token comes right after the prompt's prefill
                if n >= new:
                    break
            return time.perf_counter() - t0
        decode()
        xs = [decode() for _ in range(reps)]
        med = statistics.median(xs)
        emit({**common, "workload": f"decode_1x{new}", "median_seconds": med, "samples": xs, "rate": (new - 1) / med,
              "unit": "tok/s", "note": "greedy steps after the first token; prompt prefill excluded"})
        del llm


def main():
    global ARGS
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="vendor-data/models/SmolLM2-135M-Instruct.Q4_1.gguf")
    ap.add_argument("--quick", action="store_true", help="fewer repetitions, smaller training/generation sizes")
    ap.add_argument("--output", default="compare_results.json", help="JSON file with every record")
    ap.add_argument("--no-install", action="store_true", help="do not pip-install missing packages")
    ap.add_argument("--only", choices=["torch", "llama.cpp"], help="run one engine only")
    ARGS = ap.parse_args()
    if not os.path.exists(ARGS.model):
        sys.exit(f"compare: model {ARGS.model} not found (run scripts/setup.sh)")
    records = []
    machine = {"load_average_start": load_average(), "cpus": os.cpu_count(), "quick": ARGS.quick}

    def emit(rec):
        rec["load_average"] = load_average()
        records.append(rec)
        print(json.dumps(rec), file=sys.stderr, flush=True)

    if ARGS.only in (None, "torch"):
        torch_workloads(emit, ARGS.model, ARGS.quick)
    if ARGS.only in (None, "llama.cpp"):
        llama_cpp_workloads(emit, ARGS.model, ARGS.quick)
    machine["load_average_end"] = load_average()
    print(f"\nload average {machine['load_average_start']} (start), {machine['load_average_end']} (end); {os.cpu_count()} CPUs")
    print(f"{'engine':<48} {'threads':>7}  {'workload':<16} {'rate':>14}")
    for r in records:
        rate = f"{r['rate']:.1f} {r['unit']}" if "rate" in r else "skipped: " + r.get("skipped", "")
        print(f"{r['engine']:<48} {r.get('threads', ''):>7}  {r['workload']:<16} {rate:>14}")
    tmp = ARGS.output + ".tmp"
    with open(tmp, "w") as f:
        json.dump({"machine": machine, "records": records}, f, indent=1)
    os.replace(tmp, ARGS.output)
    print(f"wrote {ARGS.output}")


if __name__ == "__main__":
    main()
