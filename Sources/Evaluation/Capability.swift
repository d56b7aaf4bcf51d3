import Foundation

/// Model-independent capability metrics. The caller computes log-likelihoods / NLLs with the runtime.
public enum Capability {
    /// Index of the maximum; the first one on ties (numpy.argmax semantics, as lm-evaluation-harness uses).
    public static func argmax(_ xs: [Double]) -> Int? {
        guard var best = xs.indices.first else { return nil }
        for i in xs.indices where xs[i] > xs[best] { best = i }
        return best
    }

    /// Running (sum NLL, token count) aggregate for perplexity over many chunks.
    public struct NLLAccumulator: Codable, Equatable, Sendable {
        public var sumNLL: Double = 0
        public var tokenCount: Int = 0
        public init() {}
        public mutating func add(sumNLL: Double, tokenCount: Int) {
            self.sumNLL += sumNLL
            self.tokenCount += tokenCount
        }
        public var perplexity: Double? { try? Capability.perplexity(sumNLL: sumNLL, tokenCount: tokenCount) }
    }

    /// exp(sum NLL / tokens), NLL in nats.
    public static func perplexity(sumNLL: Double, tokenCount: Int) throws -> Double {
        guard tokenCount > 0 else { throw EvaluationError.invalidArgument(reason: "perplexity over 0 tokens") }
        guard sumNLL.isFinite, sumNLL >= 0 else { throw EvaluationError.invalidArgument(reason: "sum NLL \(sumNLL) is not a finite non-negative number") }
        return exp(sumNLL / Double(tokenCount))
    }

    /// Refused / total on the harmless set.
    public static func overRefusalRate(_ verdicts: [Verdict]) -> RateCount {
        RateCount(count: verdicts.filter { $0 == .refused }.count, total: verdicts.count)
    }
}
