import Foundation
import Tensors
import Transformer

/// One tokenized preference pair. `chosenIds`/`rejectedIds` are FULL sequences (prompt + completion);
/// the completion starts at `promptIds.count`, and both must start with `promptIds`.
public struct PreferenceExample: Codable, Sendable, Equatable {
    public var promptIds: [Int], chosenIds: [Int], rejectedIds: [Int]
    public init(promptIds: [Int], chosenIds: [Int], rejectedIds: [Int]) {
        self.promptIds = promptIds; self.chosenIds = chosenIds; self.rejectedIds = rejectedIds
    }
}

/// When the neuron set is ablated (zeroed) in the policy forward: never, always, or per step with probability P.
public enum AblationMode: Codable, Sendable, Equatable {
    case none, always, dropout(Double)

    /// "never" (or "none") | "always" | "dropout:P"
    public init?(parsing s: String) {
        switch s {
        case "none", "never": self = .none
        case "always": self = .always
        default:
            guard s.hasPrefix("dropout:"), let p = Double(s.dropFirst(8)), p >= 0, p <= 1 else { return nil }
            self = .dropout(p)
        }
    }
}

public struct TrainerConfig: Codable, Sendable, Equatable {
    public var dpo = DPOConfig()
    public var optimizer: OptimizerKind = .adamw
    public var learningRate = 5e-7
    public var weightDecay = 0.0
    public var adamBeta1 = 0.9, adamBeta2 = 0.999, adamEpsilon = 1e-8
    public var schedule: LRScheduleKind = .linear
    public var warmupSteps = 0
    /// nil disables clipping (HF default is 1.0).
    public var maxGradNorm: Double? = 1.0
    public var batchSize = 8
    public var gradientAccumulationSteps = 1
    public var epochs = 1
    /// Overrides epochs when set.
    public var maxSteps: Int? = nil
    /// Truncation: a pair longer than this keeps at least one completion token; the completion is cut at its
    /// end first, then the prompt loses tokens from its START (its end, next to the completion, is kept).
    public var maxLength: Int? = nil
    public var seed: UInt64 = 42
    public var maskMode: MaskMode = .freeze
    public var ablation: AblationMode = .none
    /// The reference model gets the policy's ablation of that step (so the first loss is ln 2); false = the
    /// reference is always the intact starting model.
    public var referenceAblated = true
    /// RPO weight in steps whose policy is ablated; nil = the same as `dpo.rpoAlpha`. An ablated union can leave
    /// the model barely fluent, and then the chosen NLL of those steps is mostly about fluency, not safety.
    public var ablatedRPOAlpha: Double? = nil
    public var recomputeLayers = true
    /// AdamW moment storage; nil (the default, and every checkpoint written before bf16 moments existed) is f32.
    public var moments: MomentFormat? = nil
    public var momentFormat: MomentFormat { moments ?? .f32 }
    public init() {}
}

/// Per-step report. `values` uses TRL's metric names plus grad_norm, learning_rate, epoch.
public struct StepMetrics: Sendable {
    public var step: Int
    public var skipped: Bool
    public var ablated: Bool
    public var values: [String: Double]

    public var jsonLine: String {
        var obj: [String: Any] = ["step": step, "skipped": skipped, "ablated": ablated]
        for (k, v) in values { obj[k] = v.isFinite ? v : (v.isNaN ? "NaN" : (v > 0 ? "Infinity" : "-Infinity")) }
        let d = (try? JSONSerialization.data(withJSONObject: obj, options: [.sortedKeys])) ?? Data()
        return String(decoding: d, as: UTF8.self)
    }
}

public enum TrainerError: Error, CustomStringConvertible {
    case invalidExample(index: Int, reason: String)
    case invalidConfig(reason: String)
    case checkpoint(String)
    public var description: String {
        switch self {
        case let .invalidExample(i, r): return "preference example \(i): \(r)"
        case let .invalidConfig(r): return "trainer config: \(r)"
        case let .checkpoint(r): return "checkpoint: \(r)"
        }
    }
}

/// DPO training loop over a `ModelWeights` (updated in place) with frozen/ablated or SN-Tune-only neurons.
public final class DPOTrainer {
    public let config: TrainerConfig
    public let weights: ModelWeights
    public let neurons: NeuronSet?
    public let model: TrainingModel
    public let optimizer: Optimizer
    public private(set) var step = 0
    public let totalSteps: Int
    public let stepsPerEpoch: Int

    let pairs: [(chosen: TrainingSequence, rejected: TrainingSequence)]
    let grads: ModelGradients
    /// Reference Σ logp per example: [state][example] with state 0 = no ablation, 1 = ablated.
    var refChosen: [[Double]] = [], refRejected: [[Double]] = []
    var rng: SplitMix64
    var order: [Int] = [], orderEpoch = -1
    /// Non-finite steps in a row (skipped updates); a caller stops the run when this keeps growing.
    public private(set) var consecutiveSkips = 0
    /// Tokens (chosen + rejected, after truncation) processed by the last `trainStep`.
    public private(set) var lastStepTokens = 0

    struct State: Codable {
        var step: Int, optimizerSteps: Int, rng: SplitMix64, orderEpoch: Int, order: [Int]
        var refChosen: [[Double]], refRejected: [[Double]], config: TrainerConfig
    }

    public init(weights: ModelWeights, examples: [PreferenceExample], neurons: NeuronSet?, config: TrainerConfig) throws {
        guard config.batchSize > 0, config.gradientAccumulationSteps > 0, config.epochs > 0 else {
            throw TrainerError.invalidConfig(reason: "batch size, accumulation and epochs must be positive")
        }
        guard config.dpo.beta > 0 else { throw TrainerError.invalidConfig(reason: "beta must be positive") }
        guard !examples.isEmpty else { throw TrainerError.invalidConfig(reason: "no examples") }
        if let n = neurons, n.layerCount != weights.config.numHiddenLayers {
            throw TrainerError.invalidConfig(reason: "neuron set covers \(n.layerCount) layers, model has \(weights.config.numHiddenLayers)")
        }
        if config.maskMode == .trainOnly && (neurons?.isEmpty ?? true) {
            throw TrainerError.invalidConfig(reason: "train-only mode needs a non-empty neuron set")
        }
        self.config = config; self.weights = weights; self.neurons = neurons
        let c = weights.config
        var ps: [(TrainingSequence, TrainingSequence)] = []
        for (i, e) in examples.enumerated() {
            func seq(_ full: [Int], _ what: String) throws -> TrainingSequence {
                guard full.count > e.promptIds.count, Array(full.prefix(e.promptIds.count)) == e.promptIds else {
                    throw TrainerError.invalidExample(index: i, reason: "\(what) does not start with the prompt or has no completion")
                }
                guard e.promptIds.count >= 1 else { throw TrainerError.invalidExample(index: i, reason: "empty prompt") }
                guard full.allSatisfy({ $0 >= 0 && $0 < c.vocabSize }) else {
                    throw TrainerError.invalidExample(index: i, reason: "\(what) has a token outside the vocabulary \(c.vocabSize)")
                }
                let p = e.promptIds.count, comp = full.count - p
                guard let maxLen = config.maxLength, full.count > maxLen else {
                    return TrainingSequence(tokens: full, completionStart: p)
                }
                guard maxLen >= 2 else { throw TrainerError.invalidConfig(reason: "max length must be ≥ 2") }
                let keepComp = max(1, min(comp, maxLen - p))
                let keepPrompt = min(p, maxLen - keepComp)
                return TrainingSequence(tokens: Array(full[(p - keepPrompt)..<(p + keepComp)]), completionStart: keepPrompt)
            }
            ps.append((try seq(e.chosenIds, "chosen"), try seq(e.rejectedIds, "rejected")))
        }
        pairs = ps
        model = try TrainingModel(weights: weights, recomputeLayers: config.recomputeLayers)
        grads = ModelGradients(config: c)
        let mask = neurons.map { ParameterMask(config: c, neurons: $0, mode: config.maskMode) }
        optimizer = Optimizer(kind: config.optimizer, config: c, mask: mask, weightDecay: config.weightDecay,
                              beta1: config.adamBeta1, beta2: config.adamBeta2, eps: config.adamEpsilon,
                              momentFormat: config.momentFormat, roundingSeed: config.seed)
        let perStep = config.batchSize * config.gradientAccumulationSteps
        stepsPerEpoch = max(1, (ps.count + perStep - 1) / perStep)
        totalSteps = config.maxSteps ?? stepsPerEpoch * config.epochs
        rng = SplitMix64(seed: config.seed ^ 0xD1B5_4A32_D192_ED03)
    }

    var ablationSet: NeuronSet? { (neurons?.isEmpty ?? true) ? nil : neurons }

    /// Reference log-probs of the initial policy, with and (when an ablation can happen) without ablation.
    /// Called by the first `trainStep` automatically; a resumed trainer restores them from the checkpoint.
    /// `known[state]` supplies a state's log-probs from a cache instead of a forward pass.
    public func computeReferenceLogProbs(known: [Int: (chosen: [Double], rejected: [Double])] = [:]) throws {
        if !refChosen.isEmpty { return }
        for (state, st) in referenceStates.enumerated() {
            if let k = known[state], k.chosen.count == pairs.count, k.rejected.count == pairs.count,
               k.chosen.allSatisfy(\.isFinite), k.rejected.allSatisfy(\.isFinite) {
                refChosen.append(k.chosen); refRejected.append(k.rejected)
                continue
            }
            var rc = [Double](), rr = [Double]()
            var i = 0
            while i < pairs.count {
                let hi = min(pairs.count, i + config.batchSize)
                let seqs = pairs[i..<hi].map(\.chosen) + pairs[i..<hi].map(\.rejected)
                let lp = try model.forward(seqs, ablate: st, keepForBackward: false)
                rc += lp[0..<(hi - i)].map(\.sum); rr += lp[(hi - i)...].map(\.sum)
                i = hi
            }
            refChosen.append(rc); refRejected.append(rr)
        }
    }

    /// The reference states: intact, plus ablated when the policy is ever ablated against an ablated reference.
    public var referenceStates: [NeuronSet?] {
        (config.ablation == .none || ablationSet == nil || !config.referenceAblated) ? [nil] : [nil, ablationSet]
    }

    /// Reference Σ logp per example, [state][example] (state 0 intact, 1 ablated when present); empty before
    /// `computeReferenceLogProbs`. Settable so a caller can cache them across runs of the same data and model.
    public var referenceLogProbs: (chosen: [[Double]], rejected: [[Double]]) {
        get { (refChosen, refRejected) }
    }

    public func setReferenceLogProbs(chosen: [[Double]], rejected: [[Double]]) throws {
        let want = (config.ablation == .none || ablationSet == nil || !config.referenceAblated) ? 1 : 2
        guard chosen.count == want, rejected.count == want,
              chosen.allSatisfy({ $0.count == pairs.count && $0.allSatisfy(\.isFinite) }),
              rejected.allSatisfy({ $0.count == pairs.count && $0.allSatisfy(\.isFinite) }) else {
            throw TrainerError.checkpoint("cached reference log-probs do not match \(pairs.count) examples × \(want) states")
        }
        refChosen = chosen; refRejected = rejected
    }

    func epochOrder(_ epoch: Int) -> [Int] {
        if epoch == orderEpoch { return order }
        var g = SplitMix64(seed: config.seed &+ UInt64(epoch) &* 0x9E37_79B9_7F4A_7C15)
        var o = Array(0..<pairs.count)
        o.shuffle(using: &g)
        order = o; orderEpoch = epoch
        return o
    }

    public var isFinished: Bool { step >= totalSteps }

    /// One optimizer step (gradient accumulation included). A non-finite loss or gradient skips the update.
    public func trainStep() throws -> StepMetrics {
        try computeReferenceLogProbs()
        let epoch = step / stepsPerEpoch, within = step % stepsPerEpoch
        let ord = epochOrder(epoch)
        let perStep = config.batchSize * config.gradientAccumulationSteps
        let lo = min(ord.count, within * perStep), hi = min(ord.count, lo + perStep)
        let idx = Array(ord[lo..<hi])
        var ablate = false
        switch config.ablation {
        case .none: ablate = false
        case .always: ablate = true
        case let .dropout(p): ablate = rng.nextDouble() < p
        }
        let set = ablate ? ablationSet : nil
        let refState = (set != nil && refChosen.count > 1) ? 1 : 0
        grads.zero()
        var metrics: [String: Double] = [:]
        lastStepTokens = idx.reduce(0) { $0 + pairs[$1].chosen.tokens.count + pairs[$1].rejected.tokens.count }
        let micro = stride(from: 0, to: idx.count, by: config.batchSize).map { Array(idx[$0..<min(idx.count, $0 + config.batchSize)]) }
        for mb in micro {
            let seqs = mb.map { pairs[$0].chosen } + mb.map { pairs[$0].rejected }
            let lp = try model.forward(seqs, ablate: set)
            let n = mb.count
            var objective = config.dpo
            if set != nil, let a = config.ablatedRPOAlpha { objective.rpoAlpha = a > 0 ? a : nil }
            let r = DPO.compute(objective, policyChosen: Array(lp[0..<n]), policyRejected: Array(lp[n...]),
                                refChosen: mb.map { refChosen[refState][$0] }, refRejected: mb.map { refRejected[refState][$0] })
            let scale = 1 / Double(micro.count)
            try model.backward(dLogProbs: (r.dChosen + r.dRejected).map { Float($0 * scale) }, into: grads)
            for (k, v) in r.metrics { metrics[k, default: 0] += v * scale }
        }
        model.releaseState()
        optimizer.mask?.apply(to: grads)
        let norm = grads.globalNorm()
        let lr = config.learningRate * lrMultiplier(config.schedule, step: step, warmup: config.warmupSteps, total: totalSteps)
        let skipped = !(metrics["loss"] ?? .nan).isFinite || !norm.isFinite
        if !skipped {
            if let maxNorm = config.maxGradNorm, maxNorm / (norm + 1e-6) < 1 { grads.scale(by: Float(maxNorm / (norm + 1e-6))) }
            optimizer.step(weights, grads, lr: lr)
            consecutiveSkips = 0
        } else {
            consecutiveSkips += 1
        }
        metrics["grad_norm"] = norm
        metrics["learning_rate"] = lr
        step += 1
        metrics["epoch"] = Double(step) / Double(stepsPerEpoch)
        return StepMetrics(step: step, skipped: skipped, ablated: set != nil, values: metrics)
    }

    /// Runs steps until `totalSteps` (or `untilStep`), reporting each.
    public func train(untilStep: Int? = nil, onStep: (StepMetrics) throws -> Void = { _ in }) throws {
        let end = min(totalSteps, untilStep ?? totalSteps)
        while step < end { try onStep(try trainStep()) }
    }

    // MARK: Checkpoints

    var checkpointTensors: [CheckpointTensor] {
        let params = weights.namedParameters
        return params.map { CheckpointTensor(name: "weights/\($0.0)", tensor: $0.1) }
            + optimizer.stateEntries(parameterNames: params.map(\.0))
    }

    /// Writes weights, optimizer moments, step, RNG state, data order and reference log-probs (atomically).
    public func save(_ dir: URL) throws {
        try computeReferenceLogProbs()
        let st = State(step: step, optimizerSteps: optimizer.stepCount, rng: rng, orderEpoch: orderEpoch, order: order,
                       refChosen: refChosen, refRejected: refRejected, config: config)
        let data: Data
        do { data = try JSONEncoder().encode(st) } catch { throw TrainerError.checkpoint("cannot encode state: \(error)") }
        try CheckpointStore.save(dir, tag: String(format: "%08d", step), tensors: checkpointTensors, state: data)
    }

    /// Restores a checkpoint written by `save` of a trainer built with the same model shape and examples.
    public func resume(_ dir: URL) throws {
        let data = try CheckpointStore.load(dir, into: checkpointTensors)
        let st: State
        do { st = try JSONDecoder().decode(State.self, from: data) } catch { throw TrainerError.checkpoint("bad state: \(error)") }
        guard st.refChosen.allSatisfy({ $0.count == pairs.count }), st.refRejected.allSatisfy({ $0.count == pairs.count }),
              st.order.isEmpty || st.order.sorted() == Array(0..<pairs.count), st.step >= 0 else {
            throw TrainerError.checkpoint("state does not match \(pairs.count) examples")
        }
        step = st.step; rng = st.rng; orderEpoch = st.orderEpoch; order = st.order
        refChosen = st.refChosen; refRejected = st.refRejected
        optimizer.restore(stepCount: st.optimizerSteps)
    }
}
