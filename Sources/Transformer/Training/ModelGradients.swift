import Foundation
import Tensors

/// Gradients with exactly the shapes and names of `ModelWeights` (a tied model has no lm_head gradient:
/// both uses of the embedding accumulate into `embedTokens`).
public final class ModelGradients: @unchecked Sendable {
    public let config: ModelConfig
    /// Zero-initialised tensors laid out like the weights.
    public let storage: ModelWeights

    public init(config: ModelConfig) {
        self.config = config
        storage = ModelWeights(config: config)
    }

    public var namedParameters: [(String, Tensor)] { storage.namedParameters }

    public func zero() {
        for (_, t) in namedParameters {
            let p = t.pointer
            Parallel.forRanges(t.count, minChunk: 1 << 16) { r in (p + r.lowerBound).update(repeating: 0, count: r.count) }
        }
    }

    /// self += scale · other
    public func accumulate(_ other: ModelGradients, scale: Float = 1) {
        precondition(other.config == config, "gradients of different models")
        for ((_, a), (_, b)) in zip(namedParameters, other.namedParameters) {
            let pa = a.pointer, pb = b.pointer
            Parallel.forRanges(a.count, minChunk: 1 << 15) { r in for i in r { pa[i] += scale * pb[i] } }
        }
    }

    public func scale(by s: Float) {
        for (_, t) in namedParameters {
            let p = t.pointer
            Parallel.forRanges(t.count, minChunk: 1 << 15) { r in for i in r { p[i] *= s } }
        }
    }

    /// sqrt(Σ g²) over every parameter (accumulated in Double); NaN/Inf propagate.
    public func globalNorm() -> Double {
        var total = 0.0
        for (_, t) in namedParameters {
            let p = t.pointer
            // One partial sum per worker chunk, each over four interleaved Double accumulators (the adds'
            // latency, not their count, bounds a single chain).
            var partial = [Double](repeating: 0, count: Parallel.workers)
            partial.withUnsafeMutableBufferPointer { part in
                Parallel.forChunks(t.count, minChunk: 1 << 15) { c, r in
                    var s0 = 0.0, s1 = 0.0, s2 = 0.0, s3 = 0.0
                    var i = r.lowerBound
                    while i + 4 <= r.upperBound {
                        let a = Double(p[i]), b = Double(p[i + 1]), d = Double(p[i + 2]), e = Double(p[i + 3])
                        s0 += a * a; s1 += b * b; s2 += d * d; s3 += e * e
                        i += 4
                    }
                    while i < r.upperBound { let a = Double(p[i]); s0 += a * a; i += 1 }
                    part[c] = (s0 + s1) + (s2 + s3)
                }
            }
            total += partial.reduce(0, +)
        }
        return total.squareRoot()
    }

    public var allFinite: Bool {
        for (_, t) in namedParameters {
            let p = t.pointer
            for i in 0..<t.count where !p[i].isFinite { return false }
        }
        return true
    }
}
