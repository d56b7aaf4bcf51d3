import Foundation
import Runtime
import Transformer

/// What the capability suite needs from a model. All text is raw (no chat template), as in
/// lm-evaluation-harness's default for these task types.
public protocol CapabilityScoring {
    /// Σ log p(continuation | context) per pair. Tokenisation follows lm-evaluation-harness: the
    /// concatenation is encoded as a whole and the continuation is what follows the encoded context.
    func continuationLogLikelihoods(_ pairs: [(context: String, continuation: String)]) throws -> [Double]
    /// Total NLL (nats) and scored-token count of a text, in windows of at most `window` tokens.
    func textNLL(_ text: String, window: Int) throws -> (sumNLL: Double, tokens: Int)
    /// Greedy raw-text completions.
    func complete(_ prompts: [String], maxNewTokens: Int) throws -> [String]
    /// Greedy raw-text completions, each ended at the first of `stopSequences` (which is cut off).
    func complete(_ prompts: [String], maxNewTokens: Int, stopSequences: [String]) throws -> [String]
}

public extension CapabilityScoring {
    func complete(_ prompts: [String], maxNewTokens: Int, stopSequences: [String]) throws -> [String] {
        try complete(prompts, maxNewTokens: maxNewTokens).map { GSM8K.truncate($0, at: stopSequences) }
    }
}

/// `CapabilityScoring` on a `LanguageModel` (optionally under ablation).
public struct ModelCapabilityScorer: CapabilityScoring {
    public let model: LanguageModel
    public let ablation: NeuronSet?
    public let batchSize: Int

    public init(model: LanguageModel, ablation: NeuronSet?, batchSize: Int = 16) {
        self.model = model; self.ablation = ablation; self.batchSize = max(1, batchSize)
    }

    /// No special tokens are added (lm-evaluation-harness's HF default for non-BOS-requiring models), so a
    /// context must tokenise to at least one token.
    public func continuationLogLikelihoods(_ pairs: [(context: String, continuation: String)]) throws -> [Double] {
        var seqs: [(ids: [Int], start: Int)] = []
        for (i, p) in pairs.enumerated() {
            var ctx = p.context, cont = p.continuation
            // lm-eval moves the context's trailing spaces onto the continuation.
            while ctx.hasSuffix(" ") { ctx.removeLast(); cont = " " + cont }
            let whole = model.tokenizer.encode(ctx + cont, addSpecialTokens: false)
            let ctxIds = model.tokenizer.encode(ctx, addSpecialTokens: false)
            guard !ctxIds.isEmpty, whole.count > ctxIds.count else {
                throw EvaluationError.invalidArgument(reason: "pair \(i): context or continuation encodes to no tokens")
            }
            seqs.append((whole, ctxIds.count))
        }
        var out: [Double] = []
        for lo in stride(from: 0, to: seqs.count, by: batchSize) {
            // Consecutive pairs usually share their context (one question's choices, one few-shot block).
            out += try model.logprobsSharingPrefixes(Array(seqs[lo..<min(seqs.count, lo + batchSize)]), ablation: ablation).map(\.logprob)
        }
        return out
    }

    /// Non-overlapping windows; each starts with BOS when the tokenizer has one (then every text token is
    /// scored), else the first token of each window is context only.
    public func textNLL(_ text: String, window: Int) throws -> (sumNLL: Double, tokens: Int) {
        guard window >= 2 else { throw EvaluationError.invalidArgument(reason: "perplexity window \(window) < 2") }
        let ids = model.tokenizer.encode(text, addSpecialTokens: false)
        let bos = model.tokenizer.bosTokenId
        let step = bos == nil ? window : window - 1
        var windows: [(ids: [Int], start: Int)] = []
        for lo in stride(from: 0, to: ids.count, by: step) {
            let piece = Array(ids[lo..<min(ids.count, lo + step)])
            if let b = bos { windows.append(([b] + piece, 1)) } else if piece.count >= 2 { windows.append((piece, 1)) }
        }
        var sum = 0.0, count = 0
        for lo in stride(from: 0, to: windows.count, by: max(1, batchSize / 4)) {
            for r in try model.logprobs(Array(windows[lo..<min(windows.count, lo + max(1, batchSize / 4))]), ablation: ablation) {
                sum -= r.logprob; count += r.tokens
            }
        }
        return (sum, count)
    }

    /// One greedy pass per batch with a KV cache; a prompt stops as soon as the text of its last tokens holds a stop
    /// sequence (or the model ends it), so a stop early in a long budget costs only its own tokens. The text is then
    /// cut at its first stop sequence: the one-pass greedy text, cut as lm-evaluation-harness cuts it.
    public func complete(_ prompts: [String], maxNewTokens: Int, stopSequences: [String]) throws -> [String] {
        let stops = stopSequences.filter { !$0.isEmpty }
        let enc = prompts.map { model.tokenizer.encode($0, addSpecialTokens: false) }
        // A stop sequence of c characters lies within the last c + 1 tokens' text (every token decodes to ≥ 1 byte
        // once merged; the margin covers a character split over byte-fallback tokens).
        let tail = (stops.map { $0.utf8.count }.max() ?? 0) + 4
        var out = [String](repeating: "", count: prompts.count)
        for batch in GenerationPlan.batches(lengths: enc.map(\.count), batchSize: batchSize) {
            let gen = try model.generate(prompts: batch.map { enc[$0] }, maxNewTokens: maxNewTokens, sampling: .greedy,
                                         ablation: ablation, stopWhen: { _, output in
                guard !stops.isEmpty else { return false }
                let text = self.model.decodeCompletion(Array(output.suffix(tail)))
                return stops.contains { text.contains($0) }
            })
            for (k, i) in batch.enumerated() { out[i] = GSM8K.truncate(model.decodeCompletion(gen[k]), at: stops) }
        }
        return out
    }

    public func complete(_ prompts: [String], maxNewTokens: Int) throws -> [String] {
        let enc = prompts.map { model.tokenizer.encode($0, addSpecialTokens: false) }
        var out = [String](repeating: "", count: prompts.count)
        for batch in GenerationPlan.batches(lengths: enc.map(\.count), batchSize: batchSize) {
            let gen = try model.generate(prompts: batch.map { enc[$0] }, maxNewTokens: maxNewTokens, sampling: .greedy, ablation: ablation)
            for (k, i) in batch.enumerated() { out[i] = model.decodeCompletion(gen[k]) }
        }
        return out
    }
}

/// Perplexity, multiple choice and GSM-style exact match, written as one `CapabilitySummary`.
///
/// - perplexity: exp(Σ NLL / Σ tokens) over the text in windows of ≤ `perplexityWindow` tokens.
/// - mc_acc / mc_acc_norm: lm-evaluation-harness conventions (`MCQuestion.context`, " choice" continuations,
///   acc_norm divides by the continuation's UTF-8 length), raw text, no chat template.
/// - gsm_exact_match: the first `gsmShots` problems form a few-shot prompt ("Question: …\nAnswer: …" blocks
///   separated by blank lines) and are not scored; the rest are answered greedily, cut at the first blank line
///   (or a new "Question:"), and compared by final number.
public struct CapabilityEvaluator {
    public var perplexityWindow = 512
    public var gsmShots = 4
    public var gsmMaxNewTokens = 128
    public var primaryMetric = "mc_acc"

    public init() {}

    public struct Inputs {
        public var perplexityText: String?
        public var mc: [MCQuestion]
        public var gsm: [GSMProblem]
        public init(perplexityText: String?, mc: [MCQuestion], gsm: [GSMProblem]) {
            self.perplexityText = perplexityText; self.mc = mc; self.gsm = gsm
        }

        /// data/perplexity.txt, data/mc_general.jsonl, data/gsm_mini.jsonl under `dataFolder`.
        public static func load(dataFolder: URL) throws -> Inputs {
            Inputs(perplexityText: try FileIO.readText(dataFolder.appendingPathComponent("perplexity.txt")),
                   mc: try MCQuestion.load(url: dataFolder.appendingPathComponent("mc_general.jsonl")),
                   gsm: try GSMProblem.load(url: dataFolder.appendingPathComponent("gsm_mini.jsonl")))
        }
    }

    public static func gsmPrompt(shots: [GSMProblem], question: String) -> String {
        var s = ""
        for p in shots { s += "Question: \(p.question)\nAnswer: \(p.answer)\n\n" }
        return s + "Question: \(question)\nAnswer:"
    }

    /// The answer part of a raw completion: up to the first blank line or a following "Question:".
    public static func cutGSMCompletion(_ text: String) -> String {
        var t = text
        if let r = t.range(of: "\n\n") { t = String(t[..<r.lowerBound]) }
        if let r = t.range(of: "Question:") { t = String(t[..<r.lowerBound]) }
        return t
    }

    public struct Details: Codable, Sendable {
        public var gsm: [GSMItem]
        public struct GSMItem: Codable, Sendable {
            public var question: String
            public var completion: String
            public var extracted: String?
            public var reference: String?
            public var correct: Bool
        }
    }

    public func evaluate(_ scorer: CapabilityScoring, inputs: Inputs) throws -> (metrics: [String: Double], details: Details) {
        var metrics: [String: Double] = [:]
        var gsmItems: [Details.GSMItem] = []
        if let text = inputs.perplexityText, !text.isEmpty {
            let (sum, n) = try scorer.textNLL(text, window: perplexityWindow)
            metrics["perplexity"] = try Capability.perplexity(sumNLL: sum, tokenCount: n)
            metrics["perplexity_tokens"] = Double(n)
            Progress.note("capability: perplexity \(String(format: "%.3f", metrics["perplexity"] ?? .nan)) over \(n) tokens")
        }
        if !inputs.mc.isEmpty {
            var pairs: [(context: String, continuation: String)] = []
            for q in inputs.mc { for c in q.continuations { pairs.append((q.context, c)) } }
            let lls = try scorer.continuationLogLikelihoods(pairs)
            guard lls.count == pairs.count else {
                throw EvaluationError.invalidArgument(reason: "\(lls.count) log-likelihoods for \(pairs.count) choices")
            }
            var items: [Capability.MCScore] = []
            var k = 0
            for q in inputs.mc {
                let n = q.choices.count
                items.append(.init(logLikelihoods: Array(lls[k..<k + n]), choiceTexts: q.continuations, answer: q.answer))
                k += n
            }
            let r = try Capability.multipleChoice(items)
            metrics["mc_acc"] = r.acc
            metrics["mc_acc_norm"] = r.accNorm
            metrics["mc_count"] = Double(r.count)
            Progress.note("capability: multiple choice acc \(String(format: "%.3f", r.acc)), acc_norm \(String(format: "%.3f", r.accNorm)) over \(r.count) questions")
        }
        if inputs.gsm.count > gsmShots {
            let shots = Array(inputs.gsm.prefix(gsmShots))
            let tests = Array(inputs.gsm.dropFirst(gsmShots))
            Progress.note("capability: GSM \(tests.count) problems, \(gsmShots)-shot, up to \(gsmMaxNewTokens) tokens each")
            let outs = try scorer.complete(tests.map { CapabilityEvaluator.gsmPrompt(shots: shots, question: $0.question) },
                                           maxNewTokens: gsmMaxNewTokens)
            var hits = 0
            for (p, o) in zip(tests, outs) {
                let cut = CapabilityEvaluator.cutGSMCompletion(o)
                let ok = Capability.gsmExactMatch(response: cut, reference: p.answer)
                if ok { hits += 1 }
                gsmItems.append(.init(question: p.question, completion: cut, extracted: Capability.extractFinalNumber(cut),
                                      reference: p.finalAnswer, correct: ok))
            }
            metrics["gsm_exact_match"] = Double(hits) / Double(tests.count)
            metrics["gsm_count"] = Double(tests.count)
        }
        return (metrics, Details(gsm: gsmItems))
    }

    /// Evaluates and writes summary.json (kind "capability") and capability_details.json into `output`.
    public func run(_ scorer: CapabilityScoring, inputs: Inputs, method: String, output: URL,
                    settings: [String: SettingValue] = [:], modelSHA256: String? = nil,
                    pruneSet: PruneSetInfo? = nil) throws -> CapabilitySummary {
        let started = Date()
        let (metrics, details) = try evaluate(scorer, inputs: inputs)
        var s = settings
        s["perplexity_window"] = .int(perplexityWindow)
        s["gsm_shots"] = .int(gsmShots)
        s["gsm_max_tokens"] = .int(gsmMaxNewTokens)
        s["chat_template"] = .string("none (raw text, lm-evaluation-harness style)")
        let primary = metrics[primaryMetric] != nil ? primaryMetric : (metrics.keys.sorted().first ?? primaryMetric)
        let summary = CapabilitySummary(method: method, metrics: metrics, primaryMetric: primary, settings: s,
                                        modelSHA256: modelSHA256, pruneSet: pruneSet,
                                        wallSeconds: (Date().timeIntervalSince(started) * 10).rounded() / 10)
        try FileIO.writeAtomically(try encodeJSON(details, path: output.path), to: output.appendingPathComponent("capability_details.json"))
        try summary.write(to: output)
        return summary
    }
}
