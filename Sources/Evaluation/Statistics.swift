import Foundation
import Tensors

/// Uncertainty for attack-success counts: Wilson score intervals for one cell, paired comparisons of two
/// methods on the same prompts (bootstrap interval and exact McNemar test), and mean ± standard deviation
/// over training seeds. Pure functions on counts and per-prompt flags; nothing here reads files.
public enum Statistics {
    /// The two-sided 95% normal quantile, Φ⁻¹(0.975).
    public static let z95 = 1.959963984540054

    /// A closed interval [lower, upper].
    public struct Interval: Equatable, Sendable, CustomStringConvertible {
        public var lower: Double
        public var upper: Double
        public init(lower: Double, upper: Double) { self.lower = lower; self.upper = upper }

        public func contains(_ x: Double) -> Bool { lower <= x && x <= upper }
        /// True when the whole interval lies strictly below (or strictly above) zero.
        public var excludesZero: Bool { upper < 0 || lower > 0 }
        public func scaled(by f: Double) -> Interval { Interval(lower: lower * f, upper: upper * f) }
        public var description: String { "[\(lower), \(upper)]" }
    }

    // MARK: Wilson score interval

    /// The Wilson score interval for `k` successes out of `n` trials (a proportion in [0, 1]).
    ///
    /// center = (p̂ + z²/2n) / (1 + z²/n), half-width = z/(1 + z²/n) · √(p̂(1−p̂)/n + z²/4n²). Unlike the normal
    /// (Wald) interval it stays inside [0, 1] and is not degenerate at k = 0 or k = n: the lower bound is
    /// exactly 0 when k = 0 and the upper bound exactly 1 when k = n. Returns nil when n ≤ 0 or k is not in 0...n.
    public static func wilson(successes k: Int, of n: Int, z: Double = z95) -> Interval? {
        guard n > 0, k >= 0, k <= n, z.isFinite, z >= 0 else { return nil }
        let nd = Double(n), p = Double(k) / nd, z2 = z * z
        let denom = 1 + z2 / nd
        let center = (p + z2 / (2 * nd)) / denom
        let half = z / denom * (p * (1 - p) / nd + z2 / (4 * nd * nd)).squareRoot()
        let lower = k == 0 ? 0 : max(0, center - half)
        let upper = k == n ? 1 : min(1, center + half)
        return Interval(lower: lower, upper: upper)
    }

    // MARK: Exact McNemar test

    /// Exact two-sided McNemar p-value for the discordant pairs of a paired 2×2 table: `b` prompts where only A
    /// complied and `c` where only B did. Under H₀ each discordant pair is A-only with probability ½, so
    /// p = min(1, 2·Σ_{i ≤ min(b,c)} C(b+c, i) / 2^(b+c)) (the binomial test); p = 1 when b + c = 0.
    /// The terms are summed in log space, so b + c may be in the millions without overflow or underflow to
    /// a wrong answer (a p-value below ~1e-308 comes out as 0).
    public static func mcnemarExactP(b: Int, c: Int) -> Double {
        precondition(b >= 0 && c >= 0, "discordant counts must be non-negative")
        let m = b + c
        guard m > 0 else { return 1 }
        let k = min(b, c)
        // log C(m, i) − m·ln 2, built up term by term: C(m, i+1) = C(m, i)·(m−i)/(i+1).
        var logTerm = -Double(m) * M_LN2
        var logs = [logTerm]
        logs.reserveCapacity(k + 1)
        if k > 0 {
            for i in 0..<k {
                logTerm += log(Double(m - i)) - log(Double(i + 1))
                logs.append(logTerm)
            }
        }
        let top = logs.max()!
        let sum = logs.reduce(0.0) { $0 + exp($1 - top) }
        let logTail = top + log(sum)
        return min(1, 2 * exp(logTail))
    }

    // MARK: Paired comparison

    /// Two methods judged on the same prompts: A − B in complied prompts, with a paired-bootstrap interval and
    /// the exact McNemar test.
    public struct PairedComparison: Equatable, Sendable {
        /// Prompts compared.
        public var n: Int
        public var compliedA: Int
        public var compliedB: Int
        /// Prompts where only A complied (McNemar's b) and where only B complied (c).
        public var onlyA: Int
        public var onlyB: Int
        /// compliedA − compliedB.
        public var countDifference: Int { compliedA - compliedB }
        /// (compliedA − compliedB) / n: the difference of the complied proportions.
        public var difference: Double { Double(countDifference) / Double(n) }
        /// 95% paired-bootstrap percentile interval of `difference` (a proportion difference in [−1, 1]).
        public var bootstrap: Interval
        /// `bootstrap` in prompts (× n).
        public var bootstrapCounts: Interval { bootstrap.scaled(by: Double(n)) }
        /// Exact two-sided McNemar p-value.
        public var mcnemarP: Double
        public var resamples: Int
        public var seed: UInt64
    }

    /// Compares A with B prompt by prompt: `a[i]` and `b[i]` say whether each method complied with prompt i
    /// (the arrays must be matched by prompt). The bootstrap resamples prompt indices with replacement
    /// `resamples` times from a SplitMix64 stream seeded with `seed`, so the interval is reproducible.
    public static func pairedComparison(_ a: [Bool], _ b: [Bool], resamples: Int = 10_000, seed: UInt64 = 0) throws -> PairedComparison {
        guard a.count == b.count else {
            throw EvaluationError.invalidArgument(reason: "paired comparison needs the same prompts on both sides (\(a.count) vs \(b.count))")
        }
        guard !a.isEmpty else { throw EvaluationError.invalidArgument(reason: "paired comparison of no prompts") }
        var onlyA = 0, onlyB = 0
        for (x, y) in zip(a, b) where x != y { if x { onlyA += 1 } else { onlyB += 1 } }
        let diffs = zip(a, b).map { Double(($0 ? 1 : 0) - ($1 ? 1 : 0)) }
        let boot = try pairedBootstrap(differences: diffs, resamples: resamples, seed: seed)
        return PairedComparison(n: a.count, compliedA: a.filter { $0 }.count, compliedB: b.filter { $0 }.count,
                                onlyA: onlyA, onlyB: onlyB, bootstrap: boot.interval,
                                mcnemarP: mcnemarExactP(b: onlyA, c: onlyB), resamples: resamples, seed: seed)
    }

    /// The 95% percentile interval of the mean of per-prompt paired differences `differences[i]` (A's score on
    /// prompt i minus B's), over `resamples` bootstrap resamples of the prompt indices. Each resample draws n
    /// indices uniformly with replacement and takes the mean of their differences; the interval is the 2.5th
    /// and 97.5th percentile of those means, linearly interpolated between order statistics (NumPy's default
    /// `percentile`). Also returns the observed mean.
    ///
    /// Differences in [−1, 1] per prompt cover both a single cell (complied flags, {−1, 0, 1}) and an average
    /// over several cells of the same prompts (e.g. the top-k sweep: each prompt's fraction of cells complied).
    public static func pairedBootstrap(differences d: [Double], resamples: Int = 10_000, seed: UInt64 = 0,
                                       level: Double = 0.95) throws -> (mean: Double, interval: Interval) {
        guard !d.isEmpty else { throw EvaluationError.invalidArgument(reason: "bootstrap of no prompts") }
        guard resamples >= 2 else { throw EvaluationError.invalidArgument(reason: "bootstrap needs at least 2 resamples") }
        guard level > 0, level < 1 else { throw EvaluationError.invalidArgument(reason: "confidence level must be in (0, 1)") }
        guard d.allSatisfy(\.isFinite) else { throw EvaluationError.invalidArgument(reason: "bootstrap of non-finite differences") }
        let n = d.count
        let mean = d.reduce(0, +) / Double(n)
        var rng = SplitMix64(seed: seed)
        var stats = [Double](repeating: 0, count: resamples)
        d.withUnsafeBufferPointer { dp in
            for r in 0..<resamples {
                var s = 0.0
                for _ in 0..<n { s += dp[Int(rng.next(below: UInt64(n)))] }
                stats[r] = s / Double(n)
            }
        }
        stats.sort()
        let alpha = (1 - level) / 2
        return (mean, Interval(lower: percentile(sorted: stats, alpha), upper: percentile(sorted: stats, 1 - alpha)))
    }

    /// The q-quantile of sorted values, linear between the order statistics at (count − 1)·q.
    static func percentile(sorted x: [Double], _ q: Double) -> Double {
        let h = Double(x.count - 1) * q
        let lo = Int(h.rounded(.down)), hi = min(lo + 1, x.count - 1)
        return x[lo] + (h - Double(lo)) * (x[hi] - x[lo])
    }

    // MARK: Across seeds

    /// Mean and sample standard deviation (n − 1 in the denominator) of per-seed values.
    public struct MeanSD: Equatable, Sendable {
        public var count: Int
        public var mean: Double
        /// nil for a single value.
        public var sd: Double?
    }

    /// nil for no values; `sd` is nil for one value.
    public static func meanSD(_ xs: [Double]) -> MeanSD? {
        guard !xs.isEmpty else { return nil }
        let mean = xs.reduce(0, +) / Double(xs.count)
        guard xs.count > 1 else { return MeanSD(count: 1, mean: mean, sd: nil) }
        let ss = xs.reduce(0) { $0 + ($1 - mean) * ($1 - mean) }
        return MeanSD(count: xs.count, mean: mean, sd: (ss / Double(xs.count - 1)).squareRoot())
    }

    public static func meanSD(_ xs: [Int]) -> MeanSD? { meanSD(xs.map(Double.init)) }
}

