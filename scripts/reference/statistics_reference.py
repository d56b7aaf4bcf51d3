#!/usr/bin/env python3
"""Reference values of Tests/EvaluationTests/StatisticsTests.swift, computed independently of the Swift code.

Usage: python3 scripts/reference/statistics_reference.py   (needs numpy and scipy)

- Wilson score interval by its closed form (z = 1.959963984540054);
- exact McNemar p as scipy.stats.binomtest(min(b, c), b + c, 0.5).pvalue;
- mean and sample standard deviation with the statistics module;
- the paired bootstrap by a separate implementation of the documented procedure: SplitMix64, Lemire's
  multiply-and-reject draw of an index in 0..<n, the mean of the resampled differences, numpy.percentile.
"""
from math import sqrt
import statistics

import numpy as np
from scipy.stats import binomtest

Z = 1.959963984540054
MASK = (1 << 64) - 1


def wilson(k, n):
    p = k / n
    d = 1 + Z * Z / n
    c = (p + Z * Z / (2 * n)) / d
    h = Z / d * sqrt(p * (1 - p) / n + Z * Z / (4 * n * n))
    return (0.0 if k == 0 else max(0.0, c - h), 1.0 if k == n else min(1.0, c + h))


class SplitMix64:
    def __init__(self, seed):
        self.s = seed

    def next(self):
        self.s = (self.s + 0x9E3779B97F4A7C15) & MASK
        z = self.s
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK
        return z ^ (z >> 31)

    def below(self, bound):
        m = self.next() * bound
        if (m & MASK) < bound:
            t = ((1 << 64) - bound) % bound
            while (m & MASK) < t:
                m = self.next() * bound
        return m >> 64


def bootstrap(d, resamples, seed):
    g = SplitMix64(seed)
    n = len(d)
    stats = [sum(d[g.below(n)] for _ in range(n)) / n for _ in range(resamples)]
    return np.percentile(stats, [2.5, 97.5])


for k, n in [(116, 313), (0, 10), (10, 10), (1, 2), (256, 313)]:
    print(f"wilson {k}/{n}:", *map(repr, wilson(k, n)))
for b, c in [(1, 6), (10, 2), (0, 5), (300, 250), (1500, 1400), (2000, 1800)]:
    print(f"mcnemar b={b} c={c}:", repr(float(binomtest(min(b, c), b + c, 0.5).pvalue)))
print("mean, sd of [116, 120, 111]:", repr(statistics.mean([116, 120, 111])), repr(statistics.stdev([116, 120, 111])))
g = SplitMix64(0)
print("splitmix64 seed 0:", hex(g.next()))
g = SplitMix64(1234567)
print("splitmix64 seed 1234567:", [hex(g.next()) for _ in range(3)])
a = [i % 3 == 0 for i in range(20)]
b = [i % 4 == 0 for i in range(20)]
d = [int(x) - int(y) for x, y in zip(a, b)]
print("bootstrap a=[i%3==0], b=[i%4==0], n=20, 10000 resamples, seed 42:", sum(d) / 20,
      [repr(float(v)) for v in bootstrap(d, 10000, 42)])
