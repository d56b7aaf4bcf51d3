import Foundation
import ModelFiles
import Runtime
import Transformer

/// One preference pair as token ids: the full chosen and rejected sequences and where their completions start.
public struct AttributionPair: Sendable {
    public var chosen: TrainingSequence
    public var rejected: TrainingSequence
    public init(chosen: TrainingSequence, rejected: TrainingSequence) { self.chosen = chosen; self.rejected = rejected }
}

/// Causal neuron scores from gradients, [layers × intermediateSize] row-major like `NeuronScores`.
///
/// - `safety`: a · ∂margin/∂a, margin = log p(chosen) − log p(rejected), summed over every position of both
///   sequences of a safety pair and averaged over pairs. It is the first-order estimate of how much zeroing the
///   neuron lowers the margin: the largest scores are the neurons whose removal pushes the model furthest toward
///   the rejected (unsafe) answer.
/// - `utility`: |a · ∂ log p(chosen)/∂a| on general (harmless) pairs, summed over the chosen sequence's positions,
///   then the absolute value, averaged over pairs. Wei et al. (2024) remove the neurons important for utility from
///   the safety ranking ("set difference"), so that pruning strips safety but keeps the model fluent.
public struct AttributionScores: Sendable {
    public let layers: Int
    public let intermediateSize: Int
    public var safety: [Double]
    public var safetyPairs: Int
    public var utility: [Double]?
    public var utilityPairs: Int

    public init(layers: Int, intermediateSize: Int, safety: [Double], safetyPairs: Int, utility: [Double]?, utilityPairs: Int) {
        self.layers = layers; self.intermediateSize = intermediateSize
        self.safety = safety; self.safetyPairs = safetyPairs; self.utility = utility; self.utilityPairs = utilityPairs
    }

    /// The K neurons with the largest finite safety score, after dropping the `excludeUtility` neurons with the
    /// largest utility score. Ties go to the lower (layer, neuron).
    public func topK(_ k: Int, excludeUtility q: Int = 0) throws -> NeuronSet {
        guard k >= 0, q >= 0 else { throw SafetyNeuronsError.invalidArgument("top-k \(k) and utility exclusion \(q) must be ≥ 0") }
        var excluded = Set<Int>()
        if q > 0 {
            guard let utility else {
                throw SafetyNeuronsError.invalidArgument("excluding utility neurons needs utility scores (general pairs)")
            }
            excluded = Set(rankDescending(utility).prefix(q))
        }
        let ranked = rankDescending(safety).lazy.filter { !excluded.contains($0) }.prefix(k)
        return try NeuronSet(layerCount: layers, intermediateSize: intermediateSize,
                             pairs: ranked.map { (layer: $0 / intermediateSize, neuron: $0 % intermediateSize) })
    }
}

extension AttributionScores {
    /// The scores `identify --score attribution --stats` saved (`attribution_safety`, optional `attribution_utility`),
    /// checked against the neurons file's shape.
    public init(statistics path: String, file: NeuronsFile) throws {
        let st = try SafetensorsFile(path: path)
        let n = file.layers * file.intermediateSize
        func read(_ name: String) throws -> [Double]? {
            guard st.info(name) != nil else { return nil }
            let v = try st.floats(name)
            guard v.count == n else {
                throw SafetyNeuronsError.invalidFile(path: path, reason: "tensor '\(name)' holds \(v.count) values, expected \(file.layers) × \(file.intermediateSize)")
            }
            return v.map(Double.init)
        }
        guard let safety = try read("attribution_safety") else {
            throw SafetyNeuronsError.invalidFile(path: path, reason: "no tensor 'attribution_safety' (written by identify --score attribution --stats)")
        }
        self.init(layers: file.layers, intermediateSize: file.intermediateSize, safety: safety,
                  safetyPairs: file.safetyPairs ?? 0, utility: try read("attribution_utility"), utilityPairs: file.utilityPairs ?? 0)
    }
}

extension NeuronsFile {
    /// This file with `set` as its `topk` (K = `k`), ranked by `score` ("d" or "attribution").
    public func replacingTopK(_ set: NeuronSet, k: Int, score: String, excludeUtility: Int?) -> NeuronsFile {
        var f = self
        f.topK = k
        f.sets.topk = set.pairs.map { [$0.layer, $0.neuron] }
        f.counts.topk = set.count
        f.score = score
        f.excludeUtility = excludeUtility
        return f
    }
}

/// Flat indices of the finite values, largest first, ties by index ascending.
func rankDescending(_ v: [Double]) -> [Int] {
    var idx = v.indices.filter { v[$0].isFinite }
    idx.sort { v[$0] != v[$1] ? v[$0] > v[$1] : $0 < $1 }
    return idx
}

public enum NeuronAttributor {
    /// Scores the neurons of `weights` on safety pairs (margin attribution) and, when given, general pairs
    /// (utility). `pairsPerBatch` pairs go through one forward/backward; `ablation` zeroes neurons throughout
    /// (e.g. an already-frozen set when re-identifying).
    public static func run(weights: ModelWeights, safety: [AttributionPair], utility: [AttributionPair],
                           pairsPerBatch: Int = 4, ablation: NeuronSet? = nil) throws -> AttributionScores {
        guard !safety.isEmpty else { throw SafetyNeuronsError.invalidArgument("attribution needs at least one safety pair") }
        let c = weights.config
        let per = c.numHiddenLayers * c.intermediateSize
        let model = try TrainingModel(weights: weights)
        let batch = max(1, pairsPerBatch)
        let progress = Progress("attribution", total: safety.count + utility.count)
        let started = Date()
        var tokens = 0

        // Safety: f = Σ_i [logp(chosen_i) − logp(rejected_i)]; a pair's score is its two sequences' sums.
        var safetySum = [Double](repeating: 0, count: per)
        for lo in stride(from: 0, to: safety.count, by: batch) {
            let part = safety[lo..<min(safety.count, lo + batch)]
            let seqs = part.map(\.chosen) + part.map(\.rejected)
            tokens += seqs.reduce(0) { $0 + $1.tokens.count }
            _ = try model.forward(seqs, ablate: ablation)
            let n = part.count
            let a = try model.neuronAttribution(dLogProbs: Array(repeating: 1, count: n) + Array(repeating: -1, count: n))
            a.withUnsafeBufferPointer { ap in
                for s in 0..<(2 * n) {
                    let src = ap.baseAddress! + s * per
                    for j in 0..<per { safetySum[j] += src[j] }
                }
            }
            progress.advance(by: n, unit: "pairs", fields: [("tok/s", String(format: "%.0f", Double(tokens) / max(1e-9, Date().timeIntervalSince(started))))])
        }
        let invS = 1 / Double(safety.count)
        var scores = AttributionScores(layers: c.numHiddenLayers, intermediateSize: c.intermediateSize,
                                       safety: safetySum.map { $0 * invS }, safetyPairs: safety.count,
                                       utility: nil, utilityPairs: utility.count)

        // Utility: f = Σ_i logp(chosen_i); a pair's score is |Σ_t a·∂logp/∂a| over its chosen sequence.
        if !utility.isEmpty {
            var utilitySum = [Double](repeating: 0, count: per)
            for lo in stride(from: 0, to: utility.count, by: 2 * batch) {
                let part = utility[lo..<min(utility.count, lo + 2 * batch)]
                let seqs = part.map(\.chosen)
                tokens += seqs.reduce(0) { $0 + $1.tokens.count }
                _ = try model.forward(seqs, ablate: ablation)
                let a = try model.neuronAttribution(dLogProbs: Array(repeating: 1, count: seqs.count))
                a.withUnsafeBufferPointer { ap in
                    for s in 0..<seqs.count {
                        let src = ap.baseAddress! + s * per
                        for j in 0..<per { utilitySum[j] += abs(src[j]) }
                    }
                }
                progress.advance(by: part.count, unit: "pairs", fields: [("tok/s", String(format: "%.0f", Double(tokens) / max(1e-9, Date().timeIntervalSince(started))))])
            }
            let invU = 1 / Double(utility.count)
            scores.utility = utilitySum.map { $0 * invU }
        }
        model.releaseState()
        progress.finish()
        guard scores.safety.allSatisfy(\.isFinite), scores.utility?.allSatisfy(\.isFinite) ?? true else {
            throw SafetyNeuronsError.invalidArgument("attribution produced non-finite scores (the model's log-probs overflowed)")
        }
        return scores
    }
}
