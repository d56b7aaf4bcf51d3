import Foundation
import Tensors

/// Gradients with exactly the shapes and names of `LlamaWeights` (a tied model has no lm_head gradient:
/// both uses of the embedding accumulate into `embedTokens`).
public final class LlamaGradients: @unchecked Sendable {
    public let config: LlamaConfig
    /// Zero-initialised tensors laid out like the weights.
    public let storage: LlamaWeights

    public init(config: LlamaConfig) {
        self.config = config
        storage = LlamaWeights(config: config)
    }

    public var namedParameters: [(String, Tensor)] { storage.namedParameters }

    public func zero() { for (_, t) in namedParameters { t.zero() } }

    /// self += scale · other
    public func accumulate(_ other: LlamaGradients, scale: Float = 1) {
        precondition(other.config == config, "gradients of different models")
        for ((_, a), (_, b)) in zip(namedParameters, other.namedParameters) {
            let n = a.count, pa = a.pointer, pb = b.pointer
            for i in 0..<n { pa[i] += scale * pb[i] }
        }
    }

    public func scale(by s: Float) {
        for (_, t) in namedParameters { let p = t.pointer; for i in 0..<t.count { p[i] *= s } }
    }

    /// sqrt(Σ g²) over every parameter (accumulated in Double); NaN/Inf propagate.
    public func globalNorm() -> Double {
        var total = 0.0
        for (_, t) in namedParameters {
            let p = t.pointer
            var s = 0.0
            for i in 0..<t.count { let v = Double(p[i]); s += v * v }
            total += s
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
