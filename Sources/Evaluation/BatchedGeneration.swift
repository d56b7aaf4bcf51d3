import Foundation
import Runtime
import Transformer

/// How prompts are grouped for batched decoding, and how a resumed run finds its finished prompts.
///
/// Batches are fixed by the whole prompt list: prompts sorted by token length (ties by input index) and cut
/// into runs of `batchSize`. A resumed run skips finished batches and regenerates an unfinished batch with
/// exactly the same members, so every prompt is decoded in the same batch as in an uninterrupted run and
/// the outputs (and the summary) do not depend on where a run was killed.
public enum GenerationPlan {
    public static func batches(lengths: [Int], batchSize: Int) -> [[Int]] {
        let bs = max(1, batchSize)
        let order = lengths.indices.sorted { lengths[$0] != lengths[$1] ? lengths[$0] < lengths[$1] : $0 < $1 }
        return stride(from: 0, to: order.count, by: bs).map { Array(order[$0..<min(order.count, $0 + bs)]) }
    }

    /// Assigns previously written records to prompt indices: a record belongs to the first prompt (in input
    /// order) with the same text and category that has no record yet. Records matching no prompt (a
    /// changed prompt file or --limit) are ignored.
    public static func match(prompts: [PromptRecord], existing: [GenerationRecord]) -> [Int: GenerationRecord] {
        struct Key: Hashable { var prompt: String; var category: String? }
        var free: [Key: [Int]] = [:]
        for (i, p) in prompts.enumerated().reversed() { free[Key(prompt: p.prompt, category: p.category), default: []].append(i) }
        var out: [Int: GenerationRecord] = [:]
        for r in existing {
            let k = Key(prompt: r.prompt, category: r.category)
            guard var list = free[k], let i = list.popLast() else { continue }
            free[k] = list
            out[i] = r
        }
        return out
    }
}

/// Generation settings shared by the safety and over-refusal runs.
public struct GenerationSettings: Sendable, Equatable {
    public var maxNewTokens: Int
    public var batchSize: Int
    /// Optional system message placed before each prompt in the chat template.
    public var system: String?
    /// End a response as soon as it holds a refusal phrase of the refusal judge: its verdict is then
    /// `refused` whatever follows, so the remaining tokens would only cost time.
    public var stopAtRefusal: Bool

    public init(maxNewTokens: Int = 256, batchSize: Int = 32, system: String? = nil, stopAtRefusal: Bool = false) {
        self.maxNewTokens = maxNewTokens; self.batchSize = batchSize; self.system = system; self.stopAtRefusal = stopAtRefusal
    }
}

/// Timing of one generation pass (kept out of summary.json's compared fields).
public struct GenerationTiming: Codable, Sendable, Equatable {
    public var generatedPrompts: Int
    public var resumedPrompts: Int
    public var generatedTokens: Int
    public var seconds: Double
    public var promptsPerSecond: Double { seconds > 0 ? Double(generatedPrompts) / seconds : 0 }
    public var tokensPerSecond: Double { seconds > 0 ? Double(generatedTokens) / seconds : 0 }

    enum CodingKeys: String, CodingKey {
        case generatedPrompts = "generated_prompts", resumedPrompts = "resumed_prompts"
        case generatedTokens = "generated_tokens", seconds
        case promptsPerSecond = "prompts_per_second", tokensPerSecond = "tokens_per_second"
    }

    public init(generatedPrompts: Int, resumedPrompts: Int, generatedTokens: Int, seconds: Double) {
        self.generatedPrompts = generatedPrompts; self.resumedPrompts = resumedPrompts
        self.generatedTokens = generatedTokens; self.seconds = seconds
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        generatedPrompts = try c.decode(Int.self, forKey: .generatedPrompts)
        resumedPrompts = try c.decode(Int.self, forKey: .resumedPrompts)
        generatedTokens = try c.decode(Int.self, forKey: .generatedTokens)
        seconds = try c.decode(Double.self, forKey: .seconds)
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(generatedPrompts, forKey: .generatedPrompts)
        try c.encode(resumedPrompts, forKey: .resumedPrompts)
        try c.encode(generatedTokens, forKey: .generatedTokens)
        try c.encode(seconds, forKey: .seconds)
        try c.encode(promptsPerSecond, forKey: .promptsPerSecond)
        try c.encode(tokensPerSecond, forKey: .tokensPerSecond)
    }
}

/// Greedy chat-templated generation for a prompt list, appended to generations.jsonl batch by batch.
public struct ResponseGenerator {
    public let model: LanguageModel
    public let ablation: NeuronSet?
    public let settings: GenerationSettings
    /// Label of the progress line on stderr.
    public var progressLabel = "eval"

    public init(model: LanguageModel, ablation: NeuronSet?, settings: GenerationSettings) {
        self.model = model; self.ablation = ablation; self.settings = settings
    }

    /// Generates what `log` lacks and returns one record per prompt in input order. `provisional` gives
    /// the verdict stored while generating (the final judge may later replace it).
    public func run(prompts: [PromptRecord], log: URL,
                    provisional: (String) -> Verdict? = { _ in nil },
                    stopWhen: ((String) -> Bool)? = nil) throws -> (records: [GenerationRecord], timing: GenerationTiming) {
        let started = Date()
        let appender = try GenerationAppender(url: log, resume: true)
        var done = GenerationPlan.match(prompts: prompts, existing: appender.existing)
        let resumed = done.count
        let encoded = try prompts.map { try model.encodeChat(user: $0.prompt, system: settings.system) }
        let batches = GenerationPlan.batches(lengths: encoded.map(\.count), batchSize: settings.batchSize)
        let todoBatches = batches.filter { b in b.contains { done[$0] == nil } }
        let todoPrompts = todoBatches.reduce(0) { $0 + $1.filter { done[$0] == nil }.count }
        if resumed > 0 { Progress.note("\(progressLabel): resuming, \(resumed)/\(prompts.count) generations already in \(log.lastPathComponent)") }
        let progress = Progress(progressLabel, total: todoPrompts)
        var tokens = 0, generated = 0
        for batch in todoBatches {
            let outs = try model.generate(prompts: batch.map { encoded[$0] }, maxNewTokens: settings.maxNewTokens,
                                          sampling: .greedy, ablation: ablation,
                                          stopWhen: stopWhen.map { stop in { _, out in stop(model.decodeCompletion(out)) } })
            var fresh = 0
            for (k, i) in batch.enumerated() where done[i] == nil {
                let text = model.decodeCompletion(outs[k])
                let r = GenerationRecord(prompt: prompts[i].prompt, response: text, category: prompts[i].category,
                                         verdict: provisional(text), tokens: outs[k].count)
                try appender.append(r)
                done[i] = r
                tokens += outs[k].count
                fresh += 1
            }
            generated += fresh
            let el = max(progress.elapsed, 1e-9)
            progress.advance(by: fresh, unit: "prompts", fields: [("tokens/s", String(format: "%.1f", Double(tokens) / el))])
        }
        try appender.close()
        if todoPrompts > 0 { progress.finish("\(tokens) tokens") }
        var out: [GenerationRecord] = []
        out.reserveCapacity(prompts.count)
        for i in prompts.indices {
            guard let r = done[i] else { throw EvaluationError.invalidArgument(reason: "prompt \(i) has no generation") }
            out.append(r)
        }
        return (out, GenerationTiming(generatedPrompts: generated, resumedPrompts: resumed, generatedTokens: tokens,
                                      seconds: Date().timeIntervalSince(started)))
    }
}
