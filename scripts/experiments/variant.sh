#!/usr/bin/env bash
# One row of docs/variant-experiments.md: train a SafeNeuron variant on a finished default run's pairs with the
# run's training settings, let the attacker re-identify the trained model's own neurons, and evaluate all of
# StrongREJECT unattacked and at each top-k, plus over-refusal.
#
#   scripts/experiments/variant.sh NAME NEURONS SET ABLATE [extra align flags...]
#   e.g. scripts/experiments/variant.sh drop150 exp/orig_top150.json topk dropout:0.5
#        scripts/experiments/variant.sh drop_norpo runs/default/original/neurons.json union dropout:0.5 --ablated-rpo-alpha 0
#
# Environment: RUN (a finished `safeneuron run` folder, default runs/default), OUT (default exp/), KS (top-k sweep,
# default "50 150 450 1350"), BIN (default .build/release/safeneuron).
# `scripts/experiments/topk.py RUN/original K OUT.json` writes the original model's top-K set to freeze.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$root"
[ $# -ge 4 ] || { sed -n 2,13p "$0" >&2; exit 2; }
name=$1 neurons=$2 set=$3 ablate=$4; shift 4
RUN=${RUN:-runs/default} OUT=${OUT:-exp} BIN=${BIN:-.build/release/safeneuron} KS=${KS:-50 150 450 1350}
model=vendor-data/models/SmolLM2-135M-Instruct.Q4_1.gguf
mkdir -p "$OUT"
o=$OUT/$name

"$BIN" align --model $model --pairs $RUN/pairs.jsonl --output $o --beta 0.1 --loss sigmoid --rpo-alpha 1.0 \
  --lr 5e-05 --weight-decay 0.05 --schedule cosine --warmup-steps 4 --epochs 1 --batch-size 2 --max-length 128 \
  --max-grad-norm 1.0 --seed 0 --save-every 0 --resume --reference-cache $RUN/reference-cache \
  --neurons "$neurons" --neuron-set $set --ablate $ablate "$@"
"$BIN" identify --model $o --harmful $RUN/prompts/identify_harmful.jsonl --harmless $RUN/prompts/identify_harmless.jsonl \
  --output $o.att/neurons.json --stats $o.att/stats.safetensors --tau-es 2.0 --tau-sas 2.0 --pool mean --batch-size 16
cells=(--cell $o.eval/k0)
for k in $KS; do
  python3 scripts/experiments/topk.py $o.att $k $o.att/top$k.json
  cells+=(--cell $o.eval/k$k,$o.att/top$k.json,topk)
done
"$BIN" eval --model $o --suite safety --dataset strongreject --max-tokens 40 --batch-size 128 --fluency-model $model \
  --fluency-threshold 3.0 --fluency-cache $RUN/fluency-cache.jsonl --stop-at-refusal "${cells[@]}"
"$BIN" eval --model $o --output $o.eval/overrefusal --suite overrefusal --max-tokens 40 --batch-size 128 --stop-at-refusal
python3 - "$o.eval" "$name" $KS <<'PY'
import json, sys
folder, name, ks = sys.argv[1], sys.argv[2], ["0"] + sys.argv[3:]
row = []
for k in ks:
    s = json.load(open(f"{folder}/k{k}/summary.json"))
    row.append(f"k={k}: {s['complied']} complied / {s['refused']} refused / {s['degenerate']} degenerate")
s = json.load(open(f"{folder}/overrefusal/summary.json"))
n = s["complied"] + s["refused"] + s["degenerate"]
row.append(f"over-refusal {s['refused']}/{n} ({100 * s['refused'] / n:.1f}%)")
print(name + ": " + "; ".join(row))
PY
