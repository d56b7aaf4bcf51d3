import Transformer

/// Per-neuron statistics and selection scores, all [layers × intermediateSize] row-major (layer-major).
///
/// h = harmful, s = harmless. d is Cohen's effect size with the pooled standard deviation; Δ the raw
/// mean shift; z standardises Δ against the other neurons of the same layer (population std).
/// d is NaN where the pooled std is 0 or non-finite; z is NaN for every neuron of a layer whose Δs
/// have zero spread. NaN never passes a threshold and never enters the top-k.
public struct NeuronScores: Sendable {
    public let layers: Int
    public let intermediateSize: Int
    public let harmfulCount: Int
    public let harmlessCount: Int
    public var meanHarmful: [Double]
    public var meanHarmless: [Double]
    public var stdHarmful: [Double]
    public var stdHarmless: [Double]
    public var d: [Double]
    public var delta: [Double]
    public var z: [Double]

    @inline(__always) public func index(layer: Int, neuron: Int) -> Int { layer * intermediateSize + neuron }
}

/// The selected neuron sets. `topK` is present only when a K was requested.
public struct NeuronSelection: Sendable, Equatable {
    public var es: NeuronSet
    public var sas: NeuronSet
    public var union: NeuronSet
    public var topK: NeuronSet?
    public var k: Int?
}

extension ActivationStatistics {
    /// Computes d, Δ and z for every neuron. Every layer must have seen the same numbers of
    /// harmful and harmless prompts (≥ 2 each), otherwise the tap missed something.
    public func scores() throws -> NeuronScores {
        let nh = count(layer: 0, group: .harmful), ns = count(layer: 0, group: .harmless)
        for l in 0..<layers {
            for g in PromptGroup.allCases {
                let n = count(layer: l, group: g)
                if n < 2 { throw SafetyNeuronsError.insufficientSamples(layer: l, group: g.name, count: n) }
                let expected = g == .harmful ? nh : ns
                if n != expected {
                    throw SafetyNeuronsError.inconsistentCounts(group: g.name, layer: l, count: n, expected: expected)
                }
            }
        }
        let total = layers * intermediateSize
        var s = NeuronScores(layers: layers, intermediateSize: intermediateSize, harmfulCount: nh, harmlessCount: ns,
                             meanHarmful: .init(repeating: 0, count: total), meanHarmless: .init(repeating: 0, count: total),
                             stdHarmful: .init(repeating: 0, count: total), stdHarmless: .init(repeating: 0, count: total),
                             d: .init(repeating: 0, count: total), delta: .init(repeating: 0, count: total),
                             z: .init(repeating: 0, count: total))
        let fh = Double(nh), fs = Double(ns), dof = Double(nh + ns - 2)
        let width = intermediateSize
        for l in 0..<layers {
            let lm = moments[l]
            let muH = lm.mean(0), qH = lm.m2(0), muS = lm.mean(1), qS = lm.m2(1)
            let base = l * width
            for j in 0..<width {
                let varH = max(0, qH[j]) / (fh - 1), varS = max(0, qS[j]) / (fs - 1)
                let dl = muH[j] - muS[j]
                // (n−1)·var is M2 itself; using the variances keeps the formula the paper states.
                let pooled = (((fh - 1) * varH + (fs - 1) * varS) / dof).squareRoot()
                s.meanHarmful[base + j] = muH[j]; s.meanHarmless[base + j] = muS[j]
                s.stdHarmful[base + j] = varH.squareRoot(); s.stdHarmless[base + j] = varS.squareRoot()
                s.delta[base + j] = dl
                s.d[base + j] = (pooled > 0 && pooled.isFinite) ? dl / pooled : .nan
            }
            // Two-pass layer moments of Δ: exact zero spread stays exactly zero.
            var sum = 0.0
            for j in 0..<width { sum += s.delta[base + j] }
            let mu = sum / Double(width)
            var sq = 0.0
            for j in 0..<width { let e = s.delta[base + j] - mu; sq += e * e }
            let sigma = (sq / Double(width)).squareRoot()
            for j in 0..<width {
                s.z[base + j] = (sigma > 0 && sigma.isFinite) ? (s.delta[base + j] - mu) / sigma : .nan
            }
        }
        return s
    }
}

extension NeuronScores {
    /// ES: d > τ_ES. SAS: z > τ_SAS and Δ > 0. Union = ES ∪ SAS. Top-k (when `topK` is given): the K
    /// neurons with the largest finite d over all layers, ties broken by (layer, neuron) ascending.
    public func select(tauES: Double, tauSAS: Double, topK: Int? = nil) throws -> NeuronSelection {
        guard tauES.isFinite, tauSAS.isFinite else {
            throw SafetyNeuronsError.invalidArgument("thresholds must be finite (tau_es \(tauES), tau_sas \(tauSAS))")
        }
        if let k = topK, k < 0 { throw SafetyNeuronsError.invalidArgument("top-k \(k) is negative") }
        var es = Array(repeating: [Int](), count: layers), sas = es
        for l in 0..<layers {
            for j in 0..<intermediateSize {
                let i = index(layer: l, neuron: j)
                if d[i].isFinite && d[i] > tauES { es[l].append(j) }
                if z[i].isFinite && z[i] > tauSAS && delta[i] > 0 { sas[l].append(j) }
            }
        }
        let esSet = try makeSet(es), sasSet = try makeSet(sas)
        var sel = NeuronSelection(es: esSet, sas: sasSet, union: esSet.union(sasSet), topK: nil, k: topK)
        if let k = topK {
            var ranked: [Int] = []
            ranked.reserveCapacity(d.count)
            for i in 0..<d.count where d[i].isFinite { ranked.append(i) }
            // Flat index order is (layer, neuron) order, so it is the tie-break.
            ranked.sort { d[$0] != d[$1] ? d[$0] > d[$1] : $0 < $1 }
            var per = Array(repeating: [Int](), count: layers)
            for i in ranked.prefix(k) { per[i / intermediateSize].append(i % intermediateSize) }
            sel.topK = try makeSet(per)
        }
        return sel
    }

    private func makeSet(_ per: [[Int]]) throws -> NeuronSet {
        var pairs: [(layer: Int, neuron: Int)] = []
        for (l, js) in per.enumerated() { for j in js { pairs.append((l, j)) } }
        return try NeuronSet(layerCount: layers, intermediateSize: intermediateSize, pairs: pairs)
    }
}
