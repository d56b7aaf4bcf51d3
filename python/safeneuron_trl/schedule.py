"""The seeded choices of `safeneuron align`, reproduced draw for draw.

- SplitMix64 is Sources/Tensors/SplitMix64.swift (Steele, Lea & Flood 2014).
- The data order of epoch e is `Array(0..<n).shuffle(using: &SplitMix64(seed: seed &+ e &* 0x9E3779B97F4A7C15))`,
  Swift's standard-library Fisher-Yates: for i from 0 while more than one element is left, swap element i with
  element i + r, r = Lemire's multiply-and-reject draw below the count left (stdlib `next(upperBound:)`).
- The ablation of `--ablate dropout:P` draws one double per optimizer step from
  SplitMix64(seed: seed ^ 0xD1B54A32D192ED03) (skipped steps included); the step is ablated when it is < P.
"""

MASK64 = (1 << 64) - 1
GOLDEN_GAMMA = 0x9E3779B97F4A7C15
ABLATION_STREAM_XOR = 0xD1B54A32D192ED03


class SplitMix64:
    def __init__(self, seed):
        self.state = seed & MASK64

    def next(self):
        self.state = (self.state + GOLDEN_GAMMA) & MASK64
        z = self.state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK64
        return z ^ (z >> 31)

    def next_double(self):
        """Uniform in [0, 1) from the top 53 bits (exactly representable, so identical to Swift's)."""
        return (self.next() >> 11) * 2.0 ** -53

    def next_below(self, bound):
        """Lemire's nearly divisionless draw in [0, bound), as Swift's `next(upperBound:)` does it."""
        if bound <= 0:
            raise ValueError("bound must be positive")
        product = self.next() * bound
        if (product & MASK64) < bound:
            threshold = ((1 << 64) - bound) % bound
            while (product & MASK64) < threshold:
                product = self.next() * bound
        return product >> 64


def epoch_order(seed, epoch, count):
    """The pair order `safeneuron align` uses in `epoch` (0-based) for `count` pairs."""
    generator = SplitMix64((seed + ((epoch * GOLDEN_GAMMA) & MASK64)) & MASK64)
    order = list(range(count))
    left = count
    i = 0
    while left > 1:
        j = i + generator.next_below(left)
        left -= 1
        order[i], order[j] = order[j], order[i]
        i += 1
    return order


class AblationSchedule:
    """`--ablate never|none|always|dropout:P`: whether optimizer step k (0-based) runs the policy ablated."""

    def __init__(self, text, seed):
        self.text = text
        if text in ("never", "none"):
            self.kind, self.probability = "never", 0.0
        elif text == "always":
            self.kind, self.probability = "always", 1.0
        elif text.startswith("dropout:"):
            try:
                p = float(text[len("dropout:"):])
            except ValueError:
                p = float("nan")
            if not 0.0 <= p <= 1.0:
                raise ValueError(f"--ablate {text!r}: expected always, never or dropout:P with 0 ≤ P ≤ 1")
            self.kind, self.probability = "dropout", p
        else:
            raise ValueError(f"--ablate {text!r}: expected always, never or dropout:P with 0 ≤ P ≤ 1")
        self._generator = SplitMix64((seed & MASK64) ^ ABLATION_STREAM_XOR)
        self._draws = []

    @property
    def ever_ablates(self):
        return self.kind == "always" or (self.kind == "dropout" and self.probability > 0)

    def ablated(self, step):
        if self.kind == "never":
            return False
        if self.kind == "always":
            return True
        # Draws are made in step order and kept, so asking for any step (again, or out of order) agrees with the
        # single stream the Swift trainer consumes one draw per step.
        while len(self._draws) <= step:
            self._draws.append(self._generator.next_double() < self.probability)
        return self._draws[step]
