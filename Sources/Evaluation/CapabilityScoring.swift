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
    /// Greedy raw-text completions, each ended at the first of `stopSequences` (which is cut off; none: the
    /// whole budget or the model's end of text).
    func complete(_ prompts: [String], maxNewTokens: Int, stopSequences: [String]) throws -> [String]
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
}
