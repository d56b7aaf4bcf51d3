import Foundation
import Runtime
import Tensors
import Transformer

/// Chooses the refusal direction among difference-in-means candidates (`safeneuron direction --layer auto`):
/// the (layer, position) whose ablation makes the most held-out harmful prompts comply while the answers stay fluent.
///
/// The rule:
/// 1. Screen: the decoder-layer inputs l with ⌈0.2·L⌉ ≤ l ≤ ⌊0.8·L⌋ at the last generation-prompt position, on the
///    first `screenPrompts` held-out prompts.
/// 2. Final round, on all held-out prompts: the `refineTop` best screened layers at the last position, and the best
///    one at each other generation-prompt position. Only final-round candidates can be chosen.
/// 3. For each candidate, its unit direction is ablated (every layer input, every post-attention norm input, the final
///    norm input, every position) while the prompts are answered greedily with `maxNewTokens` tokens; a response
///    ends early once it holds a refusal phrase.
/// 4. Responses are judged by the refusal string rules with `minWords` lowered to maxNewTokens / 3 (the answers are
///    cut short on purpose) and the fluency rule: mean per-token NLL under the intact model above
///    `fluencyThreshold` → degenerate.
/// 5. A candidate is eligible when the mean fluency NLL of its string-compliant responses is within the threshold.
///    The chosen one has the most `complied` responses; ties go to the lower mean NLL, then the shallower layer,
///    then the later position. With no eligible candidate the best ineligible one is taken (and reported).
/// The KL divergence of the next-token distribution at the last prompt token on held-out harmless prompts,
/// KL(intact ‖ ablated), is reported for the final round but does not decide.
public struct DirectionSelection {
    public struct Candidate: Codable, Equatable, Sendable {
        public var layer: Int
        public var position: Int
        public var complied: Int
        public var refused: Int
        public var degenerate: Int
        public var total: Int
        /// Mean fluency NLL of the responses the string rules call complied (nil when none).
        public var meanNLL: Double?
        public var harmlessKL: Double?
        public var eligible: Bool
        /// "screen" or "final".
        public var stage: String
        public var seconds: Double

        public var complianceRate: Double { total > 0 ? Double(complied) / Double(total) : 0 }

        enum CodingKeys: String, CodingKey {
            case layer, position, complied, refused, degenerate, total, meanNLL = "mean_nll", harmlessKL = "harmless_kl", eligible, stage, seconds
        }
    }

    public struct Outcome: Sendable {
        public var chosen: Candidate
        /// The intact model on all held-out prompts (layer −1).
        public var baseline: Candidate
        public var candidates: [Candidate]
    }

    public var maxNewTokens = 24
    public var batchSize = 64
    public var fluencyThreshold = 3.0
    public var depthRange: ClosedRange<Double> = 0.2...0.8
    public var refineTop = 3
    public var screenPrompts = 32
    /// Held-out harmless prompts used for the KL report (at most).
    public var klPrompts = 32

    public init() {}

    /// Decoder-layer inputs in the depth range, for a model of `layers` layers.
    public func candidateLayers(layers: Int) -> [Int] {
        let lo = Int((depthRange.lowerBound * Double(layers)).rounded(.up))
        let hi = Int((depthRange.upperBound * Double(layers)).rounded(.down))
        return Array(max(0, lo)...min(layers - 1, max(lo, hi)))
    }

    /// A seeded split of `count` items: `heldOut` indices (fraction of them, at most `cap`, at least 1 when
    /// count ≥ 2) and the rest, both in input order.
    public static func split(count: Int, fraction: Double = 0.2, cap: Int = 64, seed: UInt64 = 0) -> (rest: [Int], heldOut: [Int]) {
        var order = Array(0..<count)
        var g = SplitMix64(seed: seed, stream: 0x5EED)
        if count > 1 {
            for i in stride(from: count - 1, to: 0, by: -1) { order.swapAt(i, Int(g.next() % UInt64(i + 1))) }
        }
        let n = count < 2 ? 0 : min(cap, max(1, Int((fraction * Double(count)).rounded())))
        return (Array(order[n...]).sorted(), Array(order[..<n]).sorted())
    }

    /// Evaluates the candidates of `meanDiff` ([layers + 1, positions, hidden]) on `heldOut` harmful prompts.
    /// Leaves the model's engine without an ablated direction.
    public func run(model: LanguageModel, meanDiff: [Float], positions: Int, heldOut: [String],
                    harmlessHeldOut: [String]) throws -> Outcome {
        let c = model.config, H = c.hiddenSize, L = c.numHiddenLayers
        guard meanDiff.count == (L + 1) * positions * H else {
            throw EvaluationError.invalidArgument(reason: "mean differences do not fit the model")
        }
        guard !heldOut.isEmpty else { throw EvaluationError.invalidArgument(reason: "no held-out harmful prompts to choose a direction on") }
        defer { try? model.engine.setAblatedDirection(nil) }
        try model.engine.setAblatedDirection(nil)
        let rules = RefusalJudge(minWords: max(1, min(20, maxNewTokens / 3)), maxMeanTokenNLL: fluencyThreshold)
        let judge = RefusalResponseJudge(rules: rules, fluency: FluencyScorer(model: model, batchSize: 16))
        let encoded = try heldOut.map { try model.encodeChat(user: $0) }
        let harmless = try harmlessHeldOut.prefix(klPrompts).map { try model.encodeChat(user: $0) }
        let intactHarmless = harmless.isEmpty ? [] : try lastLogProbs(model, harmless)

        func evaluate(layer: Int, position: Int, final: Bool) throws -> Candidate {
            let count = final ? encoded.count : min(encoded.count, max(1, screenPrompts))
            let started = Date()
            if layer >= 0 {
                try model.engine.setAblatedDirection(RefusalDirectionFile.vector(meanDiff, layer: layer, position: position,
                                                                                 positions: positions, hidden: H))
            }
            var responses: [String] = []
            for lo in stride(from: 0, to: count, by: max(1, batchSize)) {
                let batch = Array(encoded[lo..<min(count, lo + max(1, batchSize))])
                let outs = try model.generate(prompts: batch, maxNewTokens: maxNewTokens, sampling: .greedy,
                                              stopWhen: { _, out in rules.containsRefusalPhrase(model.decodeCompletion(out), partial: true) })
                responses += outs.map { model.decodeCompletion($0) }
            }
            var kl: Double?
            if final && !harmless.isEmpty && layer >= 0 {
                let ablated = try lastLogProbs(model, harmless)
                kl = zip(intactHarmless, ablated).map { p, q in
                    var s = 0.0
                    for i in p.indices where p[i] > -80 { s += exp(p[i]) * (p[i] - q[i]) }
                    return s
                }.reduce(0, +) / Double(harmless.count)
            }
            try model.engine.setAblatedDirection(nil)   // fluency is judged by the intact model
            let judgements = try judge.judge(zip(heldOut.prefix(count), responses).map { ($0, $1) })
            let nlls = judgements.compactMap(\.meanNLL)
            let meanNLL = nlls.isEmpty ? nil : nlls.reduce(0, +) / Double(nlls.count)
            return Candidate(layer: layer, position: position,
                             complied: judgements.filter { $0.verdict == .complied }.count,
                             refused: judgements.filter { $0.verdict == .refused }.count,
                             degenerate: judgements.filter { $0.verdict == .degenerate }.count,
                             total: judgements.count, meanNLL: meanNLL, harmlessKL: kl,
                             eligible: (meanNLL ?? 0) <= fluencyThreshold, stage: final ? "final" : "screen",
                             seconds: (Date().timeIntervalSince(started) * 10).rounded() / 10)
        }

        func note(_ k: Candidate) {
            let name = (k.layer < 0 ? "intact model" : "layer \(k.layer) position \(k.position - positions)") + " (\(k.stage))"
            Progress.note("direction: \(name): complied \(k.complied)/\(k.total), refused \(k.refused), degenerate \(k.degenerate)"
                + (k.meanNLL.map { String(format: ", NLL %.2f", $0) } ?? "") + (k.harmlessKL.map { String(format: ", harmless KL %.3f", $0) } ?? "")
                + (k.eligible ? "" : " (not fluent)") + " [\(k.seconds)s]")
        }
        let baseline = try evaluate(layer: -1, position: positions - 1, final: true)
        note(baseline)
        var all: [Candidate] = []
        for l in candidateLayers(layers: L) {
            let k = try evaluate(layer: l, position: positions - 1, final: false)
            note(k); all.append(k)
        }
        // Eligible first, then by the ranking.
        let screened = all.sorted { a, b in a.eligible != b.eligible ? a.eligible : Self.better(a, b) }
        var finals: [Candidate] = []
        for (i, k) in screened.prefix(max(1, refineTop)).enumerated() {
            for p in (i == 0 ? Array((0..<positions).reversed()) : [positions - 1]) {
                let r = try evaluate(layer: k.layer, position: p, final: true)
                note(r); finals.append(r)
            }
        }
        all += finals
        let ranked = finals.sorted(by: Self.better)
        let chosen = ranked.first { $0.eligible } ?? ranked[0]
        if !chosen.eligible { Progress.note("direction: warning: no candidate keeps the answers fluent; taking the best anyway") }
        return Outcome(chosen: chosen, baseline: baseline, candidates: all)
    }

    /// The ranking of rule 4 (eligibility aside).
    static func better(_ a: Candidate, _ b: Candidate) -> Bool {
        if a.complied != b.complied { return a.complied > b.complied }
        let na = a.meanNLL ?? .infinity, nb = b.meanNLL ?? .infinity
        if na != nb { return na < nb }
        if a.layer != b.layer { return a.layer < b.layer }
        return a.position > b.position
    }

    /// log softmax of the next-token logits at each sequence's last token, in Double.
    func lastLogProbs(_ model: LanguageModel, _ seqs: [[Int]]) throws -> [[Double]] {
        var out: [[Double]] = []
        let V = model.config.vocabSize
        for lo in stride(from: 0, to: seqs.count, by: 16) {
            let logits = try model.engine.forward(sequences: Array(seqs[lo..<min(seqs.count, lo + 16)]), logitsFor: .last)
            for t in logits {
                let lse = Kernels.logSumExp(t.pointer, count: V)
                out.append((0..<V).map { Double(t.pointer[$0]) - lse })
            }
        }
        return out
    }
}
