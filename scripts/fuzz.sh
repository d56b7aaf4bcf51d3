#!/usr/bin/env bash
# libFuzzer runs of the file readers.
#
#   scripts/fuzz.sh <target> [seconds] [extra libFuzzer flags...]
#   targets: gguf safetensors tokenizer-json chat-template prompt-file   (or "all")
#   e.g.  scripts/fuzz.sh gguf 60
#
# Each target is one module built directly with `swiftc -sanitize=fuzzer` from the reader sources it needs
# (no SwiftPM involved) into .build/fuzz/<target>. Seeds: a tiny valid GGUF, safetensors and tokenizer.json
# written by the ReliabilityTests (RELIAB_FUZZ_SEEDS), the repository's chat templates and prompt fixtures.
# Crashes are saved as .build/fuzz/<target>/crash-*; reproduce with `.build/fuzz/<target>/fuzz <file>`.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
target=${1:?usage: scripts/fuzz.sh <gguf|safetensors|tokenizer-json|chat-template|prompt-file|all> [seconds]}
seconds=${2:-60}
shift || true; shift || true

if [ "$target" = all ]; then
    for t in gguf safetensors tokenizer-json chat-template prompt-file; do "$0" "$t" "$seconds" "$@"; done
    exit 0
fi

case "$target" in
    gguf)           dir=GGUF;          sources="Sources/ModelFiles/*.swift Sources/Tokenization/*.swift Sources/Tokenization/ChatTemplate/*.swift" ;;
    safetensors)    dir=Safetensors;   sources="Sources/ModelFiles/*.swift" ;;
    tokenizer-json) dir=TokenizerJSON; sources="Sources/Tokenization/*.swift Sources/Tokenization/ChatTemplate/*.swift" ;;
    chat-template)  dir=ChatTemplate;  sources="Sources/Tokenization/*.swift Sources/Tokenization/ChatTemplate/*.swift" ;;
    prompt-file)    dir=PromptFile;    sources="Sources/Evaluation/PromptFile.swift Sources/Evaluation/CSV.swift Sources/Evaluation/EvaluationError.swift" ;;
    *) echo "unknown target $target" >&2; exit 2 ;;
esac

out=.build/fuzz/$target
mkdir -p "$out/corpus" "$out/seeds"
# shellcheck disable=SC2086
if [ ! -x "$out/fuzz" ] || [ -n "$(find Fuzz/$dir $sources -newer "$out/fuzz" 2>/dev/null | head -1)" ]; then
    echo "building $out/fuzz" >&2
    swiftc -sanitize=fuzzer,address -parse-as-library -O -g -module-name FuzzTarget \
        Fuzz/$dir/main.swift $sources -o "$out/fuzz"
fi

# Seeds: the reliability tests write valid files when RELIAB_FUZZ_SEEDS is set (run once, cheap).
seeds=.build/fuzz/seeds
if [ ! -f "$seeds/tiny.gguf" ] && [ "$target" != prompt-file ] && [ "$target" != chat-template ]; then
    echo "writing seed files with the ReliabilityTests" >&2
    RELIAB_FUZZ_SEEDS=$ROOT/$seeds swift test -c release -Xswiftc -enable-testing \
        --filter ReliabilityTests.FuzzSeedTests >/dev/null 2>&1 || echo "warning: could not write seeds" >&2
fi
case "$target" in
    gguf)           cp -f $seeds/*.gguf "$out/seeds/" 2>/dev/null || true ;;
    safetensors)    cp -f $seeds/*.safetensors "$out/seeds/" 2>/dev/null || true ;;
    tokenizer-json) cp -f $seeds/tokenizer*.json Tests/TokenizationTests/Fixtures/*tokenizer*.json "$out/seeds/" 2>/dev/null || true ;;
    chat-template)  i=0; for f in Tests/TokenizationTests/Fixtures/chat_templates/*; do
                        [ -f "$f" ] && cp -f "$f" "$out/seeds/t$i" && i=$((i+1)); done
                    cp -f $seeds/*.jinja "$out/seeds/" 2>/dev/null || true ;;
    prompt-file)    printf '\x00{"prompt": "a", "category": "b"}\n{"prompt": "c"}\n' > "$out/seeds/p.jsonl"
                    printf '\x01id,prompt,category\n1,"a ""q""",b\n2,"multi\nline",a\n' > "$out/seeds/p.csv"
                    printf '\x02prompt,category\n"x",a\n' > "$out/seeds/p2.csv"
                    printf '\x03one\ntwo\n\nthree\n' > "$out/seeds/p.txt" ;;
esac

cd "$out"
exec ./fuzz -max_total_time="$seconds" -timeout=5 -rss_limit_mb=2048 -max_len=131072 -print_final_stats=1 \
    "$@" corpus seeds
