import Alignment
import ArgumentParser
import Foundation
import Runtime
import SafetyNeurons
import Tensors
import Transformer

/// `bench --shape NAME`: the workloads at a real model's size (`ReferenceShapes`), with seeded random weights
/// and random token ids, since no checkpoint of that size can be fetched here. Speed does not depend on the
/// weights' values; memory does not either.
extension BenchWorkloads {
    static let shapeWorkloads = ["shape_train", "shape_forward", "shape_identify", "shape_generate"]

    func shapeModel(_ name: String) throws -> ModelWeights {
        let c = try ReferenceShapes.config(name)
        let t0 = Date()
        let w = ReferenceShapes.randomWeights(c, seed: 2024)
        Progress.note(String(format: "bench: %@ with random weights, %.2fB parameters (%.1f s)", name,
                             Double(w.parameterCount) / 1e9, Date().timeIntervalSince(t0)))
        return w
    }

    func runShape(_ name: String, shape: String) throws -> [String: Any] {
        var r: [String: Any]
        switch name {
        case "shape_train": r = try shapeTrain(name, shape: shape)
        case "shape_forward": r = try shapeForward(name, shape: shape)
        case "shape_identify": r = try shapeIdentify(name, shape: shape)
        case "shape_generate": r = try shapeGenerate(name, shape: shape)
        default: throw RuntimeError.invalidArgument("unknown --shape workload \(name) (known: \(Self.shapeWorkloads.joined(separator: ", ")))")
        }
        r["model_shape"] = shape
        return r
    }

    /// DPO steps as `align` runs them, at batch 2 pairs × 256 tokens (prompt 64, completions 192): memory planned
    /// against the budget, a seeded 1% of each layer's neurons frozen and ablated, AdamW. Every step is timed
    /// (the reference pass runs before the first); afterwards every frozen slice is compared bit for bit with
    /// its value before training, and the plan's estimate is reported beside the measured peak.
    func shapeTrain(_ name: String, shape: String) throws -> [String: Any] {
        let w = try shapeModel(shape)
        let c = w.config
        let pairsPerStep = 2, length = 256, promptLength = 64
        let steps = max(1, trainSteps ?? 1)
        let examples = (0..<(pairsPerStep * min(steps, 4))).map { i -> PreferenceExample in
            let prompt = Self.tokens(count: promptLength, seed: UInt64(500 + i), vocab: c.vocabSize)
            return PreferenceExample(promptIds: prompt,
                                     chosenIds: prompt + Self.tokens(count: length - promptLength, seed: UInt64(600 + i), vocab: c.vocabSize),
                                     rejectedIds: prompt + Self.tokens(count: length - promptLength, seed: UInt64(700 + i), vocab: c.vocabSize))
        }
        var g = SplitMix64(seed: 99)
        var frozen: [(layer: Int, neuron: Int)] = []
        for l in 0..<c.numHiddenLayers {
            var chosen = Set<Int>()
            while chosen.count < max(1, c.intermediateSize / 100) { chosen.insert(Int(g.next(below: UInt64(c.intermediateSize)))) }
            frozen += chosen.sorted().map { (l, $0) }
        }
        let neurons = try NeuronSet(layerCount: c.numHiddenLayers, intermediateSize: c.intermediateSize, pairs: frozen)
        let budget = memoryBudgetBytes
        let plan = try TrainingMemoryPlan.choose(budgetBytes: budget, config: c, optimizer: .adamw, moments: momentChoice,
                                                 tokens: 2 * pairsPerStep * length, completionRows: 2 * pairsPerStep * (length - promptLength))
        Progress.note(String(format: "bench: memory plan for a %.1f GiB budget:\n", Double(budget) / Double(1 << 30)) + plan.summary)
        var config = TrainerConfig()
        config.optimizer = .adamw; config.learningRate = 5e-6; config.weightDecay = 0.05; config.schedule = .constant
        config.batchSize = pairsPerStep; config.maxSteps = steps; config.maxLength = length
        config.maskMode = .freeze; config.ablation = .always; config.dpo = DPOConfig(beta: 0.1, lossType: .sigmoid, rpoAlpha: 1)
        config.recomputeLayers = plan.recomputeLayers
        config.moments = plan.moments == .f32 ? nil : plan.moments
        let before = FrozenSlices(weights: w, neurons: neurons)
        let trainer = try DPOTrainer(weights: w, examples: examples, neurons: neurons, config: config)
        let tRef = Date()
        try trainer.computeReferenceLogProbs()
        let referenceSeconds = Date().timeIntervalSince(tRef)
        var samples: [Double] = [], losses: [Double] = []
        let progress = Progress(name, total: steps)
        while !trainer.isFinished {
            let t0 = DispatchTime.now().uptimeNanoseconds
            let m = try trainer.trainStep()
            samples.append(Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9)
            losses.append(m.values["loss"] ?? .nan)
            progress.advance(unit: "step", fields: [("loss", String(format: "%.4f", losses.last!)),
                                                    ("s", String(format: "%.1f", samples.last!))], force: true)
        }
        progress.finish()
        let unchanged = before.unchanged(in: w)
        let sorted = samples.sorted()
        let median = sorted[sorted.count / 2]
        let tokens = Double(2 * pairsPerStep * length)
        let flops = 3 * Double(2 * pairsPerStep) * FlopCount.prefill(length: length, logitRows: length - promptLength, c)
        var r = record(name, shape: "\(pairsPerStep)x2x\(length)", units: tokens, unit: "tok/s", flops: flops, timing: (median, samples))
        r["steps"] = steps
        r["losses"] = losses
        r["reference_pass_seconds"] = referenceSeconds
        r["frozen_neurons"] = neurons.count
        r["frozen_slices_bit_identical"] = unchanged
        r["memory_plan"] = plan.json
        r["memory_plan_mib"] = Double(plan.totalBytes) / Double(1 << 20)
        r["memory_budget_mib"] = Double(budget) / Double(1 << 20)
        r["parameters"] = w.parameterCount
        r["note"] = "DPOTrainer steps (policy forward+backward, clip, AdamW with \(plan.moments.rawValue) moments, 1% of neurons frozen and ablated); tokens = chosen + rejected; flops = 3x forward"
        guard unchanged else { throw RuntimeError.invalidArgument("bench \(name): a frozen slice changed during training") }
        return r
    }

    func shapeForward(_ name: String, shape: String) throws -> [String: Any] {
        let w = try shapeModel(shape), c = w.config
        let engine = try InferenceModel(weights: w)
        let batch = quick ? 2 : 4, length = 256
        let seqs = (0..<batch).map { Self.tokens(count: length, seed: UInt64($0 + 10), vocab: c.vocabSize) }
        let t = try time(name, warmup: 1, reps: quick ? 2 : 3) {
            _ = try engine.forward(sequences: seqs, logitsFor: .last)
        }
        var r = record(name, shape: "\(batch)x\(length)", units: Double(batch * length), unit: "tok/s",
                       flops: Double(batch) * FlopCount.prefill(length: length, logitRows: 1, c), timing: t)
        r["note"] = "InferenceModel.forward (prefill), logits of the last position"
        return r
    }

    /// Identification's forward: every prompt through the model with the activation tap at down_proj's input,
    /// pooled into the streaming statistics (mean pooling), no LM head.
    func shapeIdentify(_ name: String, shape: String) throws -> [String: Any] {
        let w = try shapeModel(shape), c = w.config
        let engine = try InferenceModel(weights: w)
        let prompts = quick ? 8 : 16, length = 48
        let seqs = (0..<prompts).map { Self.tokens(count: length, seed: UInt64($0 + 300), vocab: c.vocabSize) }
        let t = try time(name, warmup: 1, reps: quick ? 2 : 3) {
            let stats = ActivationStatistics(layers: c.numHiddenLayers, intermediateSize: c.intermediateSize)
            for (k, group) in [PromptGroup.harmful, .harmless].enumerated() {
                let half = Array(seqs[(k * prompts / 2)..<((k + 1) * prompts / 2)])
                _ = try engine.forward(sequences: half, logitsFor: .positions(Array(repeating: [], count: half.count)),
                                       activationTap: { layer, _, acts, rows in
                                           stats.add(activations: acts, rows: rows, pooling: .mean, layer: layer, group: group)
                                       })
            }
        }
        var r = record(name, shape: "\(prompts)x\(length)", units: Double(prompts), unit: "prompts/s",
                       flops: Double(prompts) * FlopCount.prefill(length: length, logitRows: 0, c), timing: t)
        r["note"] = "forward with the activation tap into ActivationStatistics (mean pooling), no LM head; \(length)-token prompts"
        return r
    }

    func shapeGenerate(_ name: String, shape: String) throws -> [String: Any] {
        let w = try shapeModel(shape), c = w.config
        let engine = try InferenceModel(weights: w)
        let sequences = 8, promptLength = 32, newTokens = quick ? 8 : 16
        let prompts = (0..<sequences).map { Self.tokens(count: promptLength, seed: UInt64($0 + 400), vocab: c.vocabSize) }
        let t = try time(name, warmup: 1, reps: quick ? 1 : 2) {
            _ = try engine.generate(prompts: prompts, maxNewTokens: newTokens)
        }
        var flops = 0.0
        for p in prompts {
            flops += FlopCount.prefill(length: p.count, logitRows: 1, c) + FlopCount.decode(promptLength: p.count, newTokens: newTokens - 1, c)
        }
        var r = record(name, shape: "\(sequences)x\(newTokens)", units: Double(sequences * newTokens), unit: "tok/s", flops: flops, timing: t)
        r["decode_weights"] = engine.decodeWeights.rawValue
        r["note"] = "InferenceModel.generate greedy over \(promptLength)-token prompts; time includes prefill"
        return r
    }
}

/// Copies of the slices a neuron set freezes (gate_proj and up_proj row j, down_proj column j), to compare bit
/// for bit after training.
struct FrozenSlices {
    let values: [[Float]]
    let neurons: NeuronSet

    init(weights w: ModelWeights, neurons: NeuronSet) {
        self.neurons = neurons
        values = Self.read(w, neurons)
    }

    static func read(_ w: ModelWeights, _ neurons: NeuronSet) -> [[Float]] {
        let H = w.config.hiddenSize, I = w.config.intermediateSize
        var out: [[Float]] = []
        for (l, layer) in w.layers.enumerated() {
            for j in neurons.perLayer[l] {
                out.append(Array(UnsafeBufferPointer(start: layer.gateProj.pointer + j * H, count: H))
                           + Array(UnsafeBufferPointer(start: layer.upProj.pointer + j * H, count: H))
                           + (0..<H).map { layer.downProj.pointer[$0 * I + j] })
            }
        }
        return out
    }

    func unchanged(in w: ModelWeights) -> Bool {
        let now = Self.read(w, neurons)
        return now.count == values.count && zip(now, values).allSatisfy { a, b in
            a.withUnsafeBytes { pa in b.withUnsafeBytes { pb in memcmp(pa.baseAddress!, pb.baseAddress!, pa.count) == 0 } }
        }
    }
}
extension MomentFormat: ExpressibleByArgument {}
