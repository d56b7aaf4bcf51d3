#!/usr/bin/env python3
"""Reference fixtures for Tests/SafetyNeuronsTests (SafeNeuron statistics and selection).

Regenerate (deterministic, seeded):
    python3 scripts/reference/make_neuron_fixtures.py

Writes to Tests/SafetyNeuronsTests/Fixtures/:
  activations.f32  pooled activations, little-endian float32, harmful block [n_h, L, I] then harmless [n_s, L, I]
  pooling.f32      raw sequences for the pooling test, each [rows, I] float32, concatenated
  neurons_case.json  shapes, thresholds, expected per-neuron statistics (float64; NaN/inf as strings)
                     and the expected ES / SAS / union / top-k selections

Planted cases: strong positive effects (ES and SAS), a negative shift with large |z| (must not be in SAS),
zero-variance neurons (d undefined; one still has a large positive Δ), a layer whose Δs are all equal
(zero spread: SAS selects nothing there), and two neurons with bit-identical data straddling the top-k
boundary so the (layer, neuron) tie-break decides.
"""
import json
import math
import os

import numpy as np
from scipy import stats

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OUT = os.path.join(ROOT, "Tests", "SafetyNeuronsTests", "Fixtures")

L, I = 5, 48
NH, NS = 37, 41
TAU_ES, TAU_SAS = 0.9, 2.0


def main():
    rng = np.random.default_rng(2602_12158)
    loc = rng.normal(0.0, 0.5, size=(L, I))
    scale = rng.uniform(0.3, 1.5, size=(L, I))
    harm = (loc + scale * rng.standard_normal((NH, L, I))).astype(np.float32)
    safe = (loc + scale * rng.standard_normal((NS, L, I))).astype(np.float32)

    # Strong positive shifts: selected by ES and (mostly) SAS.
    for (l, j, k) in [(0, 3, 3.0), (0, 7, 2.0), (0, 11, 1.2), (1, 9, 2.5), (2, 30, 1.5), (3, 40, 0.6)]:
        harm[:, l, j] += np.float32(k * scale[l, j])
    # Negative shift with a large |z|: never SAS (Δ < 0), never ES (d < 0).
    harm[:, 1, 5] -= np.float32(4.0 * scale[1, 5])
    # Zero variance in both groups. Dyadic constants keep every mean exact in both implementations.
    harm[:, 2, 0] = 0.5; safe[:, 2, 0] = 0.5          # Δ = 0, s = 0
    harm[:, 2, 1] = 3.75; safe[:, 2, 1] = 0.25        # Δ = 3.5 (high z), s = 0 → d undefined, SAS yes
    # A layer whose Δs are all equal: zero spread, SAS selects nothing; s = 0 so no ES either.
    harm[:, 4, :] = 0.75; safe[:, 4, :] = 0.25
    # Bit-identical copy of (2, 30) at (3, 2): equal d, broken by (layer, neuron).
    harm[:, 3, 2] = harm[:, 2, 30]; safe[:, 3, 2] = safe[:, 2, 30]

    h = harm.astype(np.float64); s = safe.astype(np.float64)
    mh, ms = h.mean(0), s.mean(0)
    vh, vs = h.var(0, ddof=1), s.var(0, ddof=1)
    sp = np.sqrt(((NH - 1) * vh + (NS - 1) * vs) / (NH + NS - 2))
    delta = mh - ms
    with np.errstate(divide="ignore", invalid="ignore"):
        d = np.where((sp > 0) & np.isfinite(sp), delta / sp, np.nan)
    z = np.full((L, I), np.nan)
    for l in range(L):
        sigma = delta[l].std(ddof=0)
        if sigma > 0:
            z[l] = stats.zscore(delta[l], ddof=0)
            assert np.allclose(z[l], (delta[l] - delta[l].mean()) / sigma, rtol=1e-12, atol=0)

    # No score may sit within rounding distance of a threshold, or the set comparison would be luck.
    fd, fz = d[np.isfinite(d)], z[np.isfinite(z)]
    assert np.all(np.abs(fd - TAU_ES) > 1e-6), "a d value sits on tau_es"
    assert np.all(np.abs(fz - TAU_SAS) > 1e-6), "a z value sits on tau_sas"

    es = [[l, j] for l in range(L) for j in range(I) if np.isfinite(d[l, j]) and d[l, j] > TAU_ES]
    sas = [[l, j] for l in range(L) for j in range(I)
           if np.isfinite(z[l, j]) and z[l, j] > TAU_SAS and delta[l, j] > 0]
    union = sorted({tuple(p) for p in es} | {tuple(p) for p in sas})
    union = [list(p) for p in union]

    # Top-k: rank finite d descending, ties by (layer, neuron); K cuts between the tied pair.
    cand = [(-d[l, j], l, j) for l in range(L) for j in range(I) if np.isfinite(d[l, j])]
    cand.sort()
    first_tie = next(i for i, c in enumerate(cand) if (c[1], c[2]) == (2, 30))
    assert (cand[first_tie + 1][1], cand[first_tie + 1][2]) == (3, 2), "tied pair not adjacent"
    assert d[2, 30] == d[3, 2]
    k = first_tie + 1
    topk = sorted([[c[1], c[2]] for c in cand[:k]])
    assert [3, 2] not in topk and [2, 30] in topk

    checks = {"zero_var_sas": [2, 1] in sas and [2, 1] not in es,
              "negative_not_sas": [1, 5] not in sas and z[1, 5] < -TAU_SAS,
              "flat_layer_empty": not any(p[0] == 4 for p in union)}
    assert all(checks.values()), checks

    os.makedirs(OUT, exist_ok=True)
    with open(os.path.join(OUT, "activations.f32"), "wb") as f:
        f.write(harm.astype("<f4").tobytes()); f.write(safe.astype("<f4").tobytes())

    # Pooling: raw sequences of several lengths.
    seq_rows = [1, 7, 13]
    seqs = [(rng.standard_normal((r, I)) * 2.0).astype(np.float32) for r in seq_rows]
    with open(os.path.join(OUT, "pooling.f32"), "wb") as f:
        for q in seqs:
            f.write(q.astype("<f4").tobytes())

    def enc(a):
        out = []
        for x in np.asarray(a, dtype=np.float64).ravel():
            if math.isnan(x): out.append("NaN")
            elif math.isinf(x): out.append("Infinity" if x > 0 else "-Infinity")
            else: out.append(float(x))
        return out

    case = {
        "layers": L, "intermediate_size": I, "harmful": NH, "harmless": NS,
        "tau_es": TAU_ES, "tau_sas": TAU_SAS, "top_k": k,
        "mean_harmful": enc(mh), "mean_harmless": enc(ms),
        "var_harmful": enc(vh), "var_harmless": enc(vs),
        "d": enc(d), "delta": enc(delta), "z": enc(z),
        "es": es, "sas": sas, "union": union, "topk": topk,
        "pool_rows": seq_rows,
        "pool_mean": [enc(q.astype(np.float64).mean(0)) for q in seqs],
        "pool_last": [enc(q[-1]) for q in seqs],
    }
    with open(os.path.join(OUT, "neurons_case.json"), "w") as f:
        json.dump(case, f, separators=(",", ":"))
    print(f"es={len(es)} sas={len(sas)} union={len(union)} top_k={k}")


if __name__ == "__main__":
    main()
