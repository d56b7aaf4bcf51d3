import Foundation
import Tensors
import Transformer

extension NeuronScores {
    /// Names of the exported per-neuron arrays, in a stable order.
    public static let exportNames = ["mean_harmful", "mean_harmless", "std_harmful", "std_harmless", "d", "delta", "z"]

    /// Every per-neuron array as a [layers, intermediateSize] f32 tensor keyed by `exportNames`
    /// (NaN where d or z is undefined), ready for a safetensors writer.
    public func exportTensors() -> [String: Tensor] {
        let arrays = [meanHarmful, meanHarmless, stdHarmful, stdHarmless, d, delta, z]
        var out: [String: Tensor] = [:]
        for (name, values) in zip(Self.exportNames, arrays) {
            let t = Tensor(shape: [layers, intermediateSize], zeroed: false)
            for i in 0..<values.count { t.pointer[i] = Float(values[i]) }
            out[name] = t
        }
        return out
    }

    /// Per-layer counts of selected neurons and the mean |d| over neurons with a finite d.
    public func layerSummary(_ selection: NeuronSelection) -> [LayerSummary] {
        (0..<layers).map { l in
            var sum = 0.0, n = 0
            for j in 0..<intermediateSize {
                let v = d[index(layer: l, neuron: j)]
                if v.isFinite { sum += abs(v); n += 1 }
            }
            return LayerSummary(layer: l, es: selection.es.perLayer[l].count, sas: selection.sas.perLayer[l].count,
                                union: selection.union.perLayer[l].count,
                                topK: selection.topK.map { $0.perLayer[l].count },
                                meanAbsD: n > 0 ? sum / Double(n) : .nan)
        }
    }
}

public struct LayerSummary: Sendable, Equatable {
    public var layer: Int
    public var es: Int
    public var sas: Int
    public var union: Int
    public var topK: Int?
    /// Mean |d| over the layer's neurons with a finite d; NaN when none has one.
    public var meanAbsD: Double

    /// A Markdown table, one row per layer plus a total row (the total's mean |d| averages the layers).
    public static func markdownTable(_ rows: [LayerSummary]) -> String {
        let hasTopK = rows.contains { $0.topK != nil }
        var head = "| layer | ES | SAS | union |"
        var rule = "|------:|---:|----:|------:|"
        if hasTopK { head += " top-k |"; rule += "------:|" }
        head += " mean \\|d\\| |"; rule += "-----------:|"
        var lines = [head, rule]
        func fmt(_ x: Double) -> String { x.isFinite ? String(format: "%.3f", x) : "–" }
        for r in rows {
            var s = "| \(r.layer) | \(r.es) | \(r.sas) | \(r.union) |"
            if hasTopK { s += " \(r.topK ?? 0) |" }
            lines.append(s + " \(fmt(r.meanAbsD)) |")
        }
        let finite = rows.map(\.meanAbsD).filter(\.isFinite)
        var total = "| **all** | \(rows.reduce(0) { $0 + $1.es }) | \(rows.reduce(0) { $0 + $1.sas }) | \(rows.reduce(0) { $0 + $1.union }) |"
        if hasTopK { total += " \(rows.reduce(0) { $0 + ($1.topK ?? 0) }) |" }
        total += " \(fmt(finite.isEmpty ? .nan : finite.reduce(0, +) / Double(finite.count))) |"
        lines.append(total)
        return lines.joined(separator: "\n") + "\n"
    }
}

/// The attacker's pruning artifact: sets down_proj[:, j] = 0 in layer l for every (l, j) in `set`.
/// A zero column means neuron j's activation never reaches the residual stream, which is exactly
/// what ablating the neuron at inference does. Returns the number of columns zeroed.
@discardableResult
public func zeroDownProjColumns(_ weights: ModelWeights, set: NeuronSet) throws -> Int {
    let c = weights.config
    guard set.layerCount == weights.layers.count else {
        throw SafetyNeuronsError.invalidArgument("neuron set covers \(set.layerCount) layers, the model has \(weights.layers.count)")
    }
    for (l, js) in set.perLayer.enumerated() {
        let shape = weights.layers[l].downProj.shape
        guard shape == [c.hiddenSize, c.intermediateSize] else {
            throw SafetyNeuronsError.shapeMismatch(what: "model.layers.\(l).mlp.down_proj.weight",
                                                   expected: [c.hiddenSize, c.intermediateSize], found: shape)
        }
        if let bad = js.first(where: { $0 < 0 || $0 >= c.intermediateSize }) {
            throw SafetyNeuronsError.invalidArgument("neuron [\(l), \(bad)] is outside intermediate size \(c.intermediateSize)")
        }
    }
    let rows = c.hiddenSize, cols = c.intermediateSize
    Parallel.forEach(set.layerCount) { l in
        let js = set.perLayer[l]
        if js.isEmpty { return }
        let w = weights.layers[l].downProj.pointer
        for r in 0..<rows {
            let row = w + r * cols
            for j in js { row[j] = 0 }
        }
    }
    return set.count
}
