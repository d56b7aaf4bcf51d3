import Foundation
import ModelFiles
import Runtime
import Tensors
import Transformer

/// Settings of one identification run (the paper's Activation Effect Size ∪ Safety Activation Shift).
public struct IdentificationSettings: Sendable {
    public var pooling: ActivationPooling = .mean
    public var tauES: Double = 2
    public var tauSAS: Double = 2
    public var topK: Int?
    public var batchSize: Int = 16
    /// Neurons zeroed while recording (e.g. already-frozen neurons when re-identifying in a later round).
    public var ablation: NeuronSet?

    public init() {}
}

/// The outcome of `identify`: per-neuron scores, the selected sets and the file describing them.
public struct IdentificationResult {
    public var statistics: ActivationStatistics
    public var scores: NeuronScores
    public var selection: NeuronSelection
    public var file: NeuronsFile
    public var seconds: Double
    public var promptsPerSecond: Double
}

/// Runs harmful and harmless prompts through a model with the chat template and the generation prompt,
/// records every MLP neuron's activation at `down_proj`'s input, pools it per prompt, and streams it into
/// double-precision statistics: memory does not grow with the number of prompts.
public enum NeuronIdentifier {
    public static func run(model: LanguageModel, harmful: [String], harmless: [String],
                           settings: IdentificationSettings, modelName: String? = nil) throws -> IdentificationResult {
        guard harmful.count >= 2, harmless.count >= 2 else {
            throw RuntimeError.invalidArgument("identification needs at least 2 harmful and 2 harmless prompts (got \(harmful.count) and \(harmless.count))")
        }
        let c = model.config
        let stats = ActivationStatistics(layers: c.numHiddenLayers, intermediateSize: c.intermediateSize)
        let progress = Progress("identify", total: harmful.count + harmless.count)
        let started = Date()
        for (group, prompts) in [(PromptGroup.harmful, harmful), (.harmless, harmless)] {
            let encoded = try prompts.map { try model.encodeChat(user: $0) }
            // Longest first keeps batches of similar lengths; order does not change the statistics.
            let order = encoded.indices.sorted { encoded[$0].count > encoded[$1].count }
            for start in stride(from: 0, to: order.count, by: max(1, settings.batchSize)) {
                let batch = order[start..<min(order.count, start + max(1, settings.batchSize))].map { encoded[$0] }
                _ = try model.engine.forward(
                    sequences: batch, logitsFor: .positions(Array(repeating: [], count: batch.count)),
                    ablation: settings.ablation,
                    activationTap: { layer, _, acts, rows in
                        stats.add(activations: acts, rows: rows, pooling: settings.pooling, layer: layer, group: group)
                    })
                progress.advance(by: batch.count, unit: "prompts")
            }
        }
        let seconds = Date().timeIntervalSince(started)
        progress.finish()
        let scores = try stats.scores()
        let selection = try scores.select(tauES: settings.tauES, tauSAS: settings.tauSAS, topK: settings.topK)
        let file = NeuronsFile(model: modelName ?? model.path, pool: settings.pooling, tauES: settings.tauES,
                               tauSAS: settings.tauSAS, scores: scores, selection: selection)
        return IdentificationResult(statistics: stats, scores: scores, selection: selection, file: file, seconds: seconds,
                                    promptsPerSecond: Double(harmful.count + harmless.count) / max(seconds, 1e-9))
    }

    /// Saves every neuron's means, standard deviations, d, Δ and z as [layers × intermediate] f32 tensors, plus
    /// `attribution_safety` and `attribution_utility` when attribution scores are given.
    public static func writeStatistics(_ scores: NeuronScores, attribution: AttributionScores? = nil, to path: String) throws {
        var all = scores.exportTensors()
        let shape = [scores.layers, scores.intermediateSize]
        func tensor(_ v: [Double]) -> Tensor {
            let t = Tensor(shape: shape, zeroed: false)
            for i in 0..<v.count { t.pointer[i] = Float(v[i]) }
            return t
        }
        if let a = attribution {
            all["attribution_safety"] = tensor(a.safety)
            if let u = a.utility { all["attribution_utility"] = tensor(u) }
        }
        let tensors = all.sorted { $0.key < $1.key }
        try SafetensorsWriter.write(path: path, tensors: tensors.map { (name: $0.key, shape: $0.value.shape, values: $0.value.array) },
                                    dtype: .f32, metadata: ["format": "safeneuron.stats/1"])
    }
}

extension IdentificationResult {
    /// Replaces the `topk` set with the K neurons of largest safety attribution, after the set difference with the
    /// `excludeUtility` largest utility neurons, and records that in the neurons file.
    public mutating func rankTopK(byAttribution a: AttributionScores, k: Int, excludeUtility q: Int) throws {
        guard a.layers == scores.layers, a.intermediateSize == scores.intermediateSize else {
            throw SafetyNeuronsError.shapeMismatch(what: "attribution scores", expected: [scores.layers, scores.intermediateSize],
                                                   found: [a.layers, a.intermediateSize])
        }
        let set = try a.topK(k, excludeUtility: q)
        selection.topK = set
        selection.k = k
        file = file.replacingTopK(set, k: k, score: "attribution", excludeUtility: q)
        file.safetyPairs = a.safetyPairs
        file.utilityPairs = a.utilityPairs
    }
}
