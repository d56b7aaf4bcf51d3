import Tensors
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Per-layer key/value cache: `slots` sequences × `maxLength` positions × kvDim, keys post-RoPE.
final class KVCache {
    let keys: [UnsafeMutablePointer<Float>]
    let values: [UnsafeMutablePointer<Float>]
    let slots: Int
    let maxLength: Int

    init(config c: ModelConfig, slots: Int, maxLength: Int) {
        self.slots = slots; self.maxLength = maxLength
        let n = max(1, slots * maxLength * c.kvDim)
        keys = (0..<c.numHiddenLayers).map { _ in .allocate(capacity: n) }
        values = (0..<c.numHiddenLayers).map { _ in .allocate(capacity: n) }
    }

    deinit { for p in keys + values { p.deallocate() } }
}

/// How the next token is chosen.
public enum Sampling: Sendable, Equatable {
    /// argmax of the logits, ties to the lowest token id (torch.argmax).
    case greedy
    /// Logits / temperature, then top-p nucleus (the smallest most-probable set whose probability
    /// reaches `topP`, at least one token), then one draw from the renormalised set. Each sequence
    /// `i` of a call draws from its own `SplitMix64(seed: seed, stream: i)`, so its tokens do not
    /// depend on the other prompts in the batch. temperature ≤ 0 means greedy.
    case sample(temperature: Float, topP: Float, seed: UInt64)
}

/// Chooses tokens from logits; keeps its sort buffer between calls.
struct TokenSampler {
    let sampling: Sampling
    var generators: [SplitMix64]
    var order: [Int32] = []
    var probs: [Double] = []

    init(sampling: Sampling, sequences: Int) {
        self.sampling = sampling
        if case let .sample(_, _, seed) = sampling {
            generators = (0..<sequences).map { SplitMix64(seed: seed, stream: UInt64($0)) }
        } else {
            generators = []
        }
    }

    mutating func choose(_ logits: UnsafePointer<Float>, vocab: Int, sequence: Int) -> Int {
        guard case let .sample(temperature, topP, _) = sampling, temperature > 0 else {
            return Kernels.argmax(logits, count: vocab)
        }
        if probs.count != vocab { probs = .init(repeating: 0, count: vocab); order = .init(repeating: 0, count: vocab) }
        let t = Double(temperature)
        var m = -Double.infinity
        for i in 0..<vocab { m = max(m, Double(logits[i]) / t) }
        var z = 0.0
        for i in 0..<vocab { let e = exp(Double(logits[i]) / t - m); probs[i] = e; z += e }
        for i in 0..<vocab { probs[i] /= z; order[i] = Int32(i) }
        let p = probs
        order.sort { a, b in p[Int(a)] != p[Int(b)] ? p[Int(a)] > p[Int(b)] : a < b }
        var kept = 0, mass = 0.0
        let target = Double(min(max(topP, 0), 1))
        repeat { mass += p[Int(order[kept])]; kept += 1 } while kept < vocab && mass < target
        var u = generators[sequence].nextUnit() * mass
        for k in 0..<kept {
            u -= p[Int(order[k])]
            if u < 0 { return Int(order[k]) }
        }
        return Int(order[kept - 1])
    }
}

/// Incremental decoding over a fixed set of cache slots: each `append` runs only the new tokens,
/// attending to everything already in their slots. Owned by one model; one call at a time.
public final class DecodeSession {
    public let model: InferenceModel
    public let maxLength: Int
    /// Tokens held per slot so far.
    public private(set) var lengths: [Int]
    let cache: KVCache
    /// Compact weight copies for small decode steps (nil: f32), looked up at the session's first such step;
    /// the weights must not change during a session (its cached keys/values would be stale too).
    private var compact: CompactWeights?
    private var compactLooked = false

    public init(model: InferenceModel, slots: Int, maxLength: Int) throws {
        guard slots > 0, maxLength > 0, slots <= 1 << 16, maxLength <= 1 << 24 else {
            throw InferenceError.invalidInput(source: "DecodeSession", reason: "\(slots) slots × \(maxLength) positions")
        }
        self.model = model; self.maxLength = maxLength
        lengths = [Int](repeating: 0, count: slots)
        cache = KVCache(config: model.config, slots: slots, maxLength: maxLength)
    }

    /// Appends `chunks[i]` to slot `slots[i]` (distinct slots) and returns the logits of each chunk's last
    /// token as [chunks.count × vocab]. Prefill and one-token decode steps are the same call.
    public func append(_ chunks: [[Int]], to slots: [Int], ablation: NeuronSet? = nil) throws -> Tensor {
        let out = Tensor(shape: [chunks.count, model.config.vocabSize], zeroed: false)
        try append(chunks, to: slots, ablation: ablation, into: out.pointer)
        return out
    }

    func append(_ chunks: [[Int]], to slots: [Int], ablation: NeuronSet?, into logits: UnsafeMutablePointer<Float>) throws {
        let plan = try plan(chunks, slots: slots, ablation: ablation)
        // Prefill chunks (more than one token) stay f32 so the prompt's keys/values are exact.
        var cw: CompactWeights?
        if chunks.count <= Int8Matrix.maxBatch, chunks.allSatisfy({ $0.count == 1 }) {
            if !compactLooked { compact = model.compactWeightsForDecode(); compactLooked = true }
            cw = compact
        }
        model.runBody(plan, cache: cache, ablation: ablation, tap: nil, compact: cw)
        model.lmHead(rows: plan.seqStart.indices.map { plan.seqStart[$0] + plan.seqRows[$0] - 1 }, into: logits, compact: cw)
        for (i, s) in slots.enumerated() { lengths[s] += chunks[i].count }
    }

    /// Appends `chunks[i]` to slot `slots[i]` and returns, per chunk, Σ log p(chunk[t] | all before it) over
    /// t ≥ 1 (the chunk's first token only conditions what follows). f32 weights throughout.
    public func appendScoring(_ chunks: [[Int]], to slots: [Int], ablation: NeuronSet? = nil) throws -> [Double] {
        let plan = try plan(chunks, slots: slots, ablation: ablation)
        model.runBody(plan, cache: cache, ablation: ablation, tap: nil, compact: nil)
        var jobs: [(row: Int, target: Int, seq: Int)] = []
        for (i, chunk) in chunks.enumerated() where chunk.count > 1 {
            for t in 1..<chunk.count { jobs.append((plan.seqStart[i] + t - 1, chunk[t], i)) }
        }
        for (i, s) in slots.enumerated() { lengths[s] += chunks[i].count }
        return model.targetLogProbs(jobs, sequences: chunks.count)
    }

    /// Appends `chunks[i]` to slot `slots[i]` without computing any logits, with f32 weights: prompt prefixes
    /// that later chunks attend to.
    public func prefill(_ chunks: [[Int]], to slots: [Int], ablation: NeuronSet? = nil) throws {
        let plan = try plan(chunks, slots: slots, ablation: ablation)
        model.runBody(plan, cache: cache, ablation: ablation, tap: nil, compact: nil)
        for (i, s) in slots.enumerated() { lengths[s] += chunks[i].count }
    }

    /// Copies the first `count` cached positions of slot `source` into slot `target`, whose own tokens are
    /// forgotten: sequences that share a prefix compute its keys/values once.
    public func copyPrefix(from source: Int, to target: Int, count: Int) throws {
        guard source >= 0, source < lengths.count, target >= 0, target < lengths.count, count >= 0, count <= lengths[source] else {
            throw InferenceError.invalidInput(source: "DecodeSession",
                reason: "cannot copy \(count) positions from slot \(source) to slot \(target)")
        }
        if source != target {
            let kv = model.config.kvDim
            for l in cache.keys.indices {
                (cache.keys[l] + target * maxLength * kv).update(from: cache.keys[l] + source * maxLength * kv, count: count * kv)
                (cache.values[l] + target * maxLength * kv).update(from: cache.values[l] + source * maxLength * kv, count: count * kv)
            }
        }
        lengths[target] = count
    }

    /// The keys and values of a slot's tokens, layer by layer (keys then values, `lengths[slot] × kvDim` each).
    func exportSlot(_ slot: Int) -> [Float] {
        let kv = model.config.kvDim, n = lengths[slot] * kv
        var out = [Float](repeating: 0, count: 2 * cache.keys.count * n)
        out.withUnsafeMutableBufferPointer { o in
            for l in cache.keys.indices {
                (o.baseAddress! + 2 * l * n).update(from: cache.keys[l] + slot * maxLength * kv, count: n)
                (o.baseAddress! + (2 * l + 1) * n).update(from: cache.values[l] + slot * maxLength * kv, count: n)
            }
        }
        return out
    }

    /// Loads `count` positions exported by `exportSlot` into `slot`.
    func importSlot(_ slot: Int, from state: [Float], count: Int) {
        let kv = model.config.kvDim, n = count * kv
        precondition(state.count == 2 * cache.keys.count * n && count <= maxLength)
        state.withUnsafeBufferPointer { st in
            for l in cache.keys.indices {
                (cache.keys[l] + slot * maxLength * kv).update(from: st.baseAddress! + 2 * l * n, count: n)
                (cache.values[l] + slot * maxLength * kv).update(from: st.baseAddress! + (2 * l + 1) * n, count: n)
            }
        }
        lengths[slot] = count
    }

    private func plan(_ chunks: [[Int]], slots: [Int], ablation: NeuronSet?) throws -> InferenceModel.Plan {
        try model.validate(chunks, source: "DecodeSession")
        try model.validate(ablation)
        guard slots.count == chunks.count, Set(slots).count == slots.count else {
            throw InferenceError.invalidInput(source: "DecodeSession", reason: "need one distinct slot per chunk")
        }
        for (i, s) in slots.enumerated() {
            guard s >= 0, s < lengths.count else {
                throw InferenceError.invalidInput(source: "DecodeSession", reason: "slot \(s) outside 0..<\(lengths.count)")
            }
            guard lengths[s] + chunks[i].count <= maxLength else {
                throw InferenceError.invalidInput(source: "DecodeSession",
                    reason: "slot \(s) would hold \(lengths[s] + chunks[i].count) tokens, capacity \(maxLength)")
            }
        }
        return InferenceModel.Plan(chunks: chunks, slots: slots, startPositions: slots.map { lengths[$0] }, slotStride: maxLength)
    }

    /// Forgets a slot's tokens so it can hold a new sequence.
    public func reset(slot: Int) { if slot >= 0 && slot < lengths.count { lengths[slot] = 0 } }
}

extension InferenceModel {
    /// Batched generation with a KV cache. The prompts are prefilled together (ragged), then all
    /// unfinished sequences decode one token per step in a single [B × hidden] batch. A sequence
    /// finishes after `maxNewTokens` tokens or right after emitting a token in `stopTokens` (which is
    /// included in its output). Returns the new tokens per prompt. `onToken(sequence, token)` is called
    /// as each token is chosen; `stopWhen(sequence, output)` can end a sequence early (e.g. once a judge's
    /// verdict can no longer change), which frees its row for the rest of the batch.
    public func generate(prompts: [[Int]], maxNewTokens: Int, sampling: Sampling = .greedy,
                         stopTokens: Set<Int> = [], ablation: NeuronSet? = nil,
                         onToken: ((_ sequence: Int, _ token: Int) -> Void)? = nil,
                         stopWhen: ((_ sequence: Int, _ output: [Int]) -> Bool)? = nil) throws -> [[Int]] {
        try validate(prompts, source: "generate")
        try validate(ablation)
        guard maxNewTokens >= 0 else {
            throw InferenceError.invalidInput(source: "generate", reason: "maxNewTokens \(maxNewTokens) is negative")
        }
        var outputs = [[Int]](repeating: [], count: prompts.count)
        if maxNewTokens == 0 || prompts.isEmpty { return outputs }
        let maxLen = (prompts.map { $0.count }.max() ?? 0) + maxNewTokens
        let session = try DecodeSession(model: self, slots: prompts.count, maxLength: maxLen)
        var sampler = TokenSampler(sampling: sampling, sequences: prompts.count)
        let vocab = config.vocabSize
        let logits = Tensor(shape: [prompts.count, vocab], zeroed: false)
        var active = Array(prompts.indices)
        var chunks = prompts
        // A chat template's system turn is usually the same for every prompt: compute its keys/values once.
        let shared = Self.sharedPrefixLength(prompts)
        if prompts.count > 1, shared >= 8 {
            try session.append([Array(prompts[0][..<shared])], to: [0], ablation: ablation, into: logits.pointer)
            for s in 1..<prompts.count { try session.copyPrefix(from: 0, to: s, count: shared) }
            chunks = prompts.map { Array($0[shared...]) }
        }
        while !active.isEmpty {
            try session.append(chunks, to: active, ablation: ablation, into: logits.pointer)
            var next: [[Int]] = [], stillActive: [Int] = []
            for (i, s) in active.enumerated() {
                let tok = sampler.choose(logits.pointer + i * vocab, vocab: vocab, sequence: s)
                outputs[s].append(tok)
                onToken?(s, tok)
                if outputs[s].count < maxNewTokens && !stopTokens.contains(tok) && !(stopWhen?(s, outputs[s]) ?? false) {
                    stillActive.append(s); next.append([tok])
                }
            }
            active = stillActive
            chunks = next
        }
        return outputs
    }

    /// Tokens every sequence starts with, leaving each at least one token of its own (whose logits are needed).
    static func sharedPrefixLength(_ sequences: [[Int]]) -> Int {
        guard let first = sequences.first else { return 0 }
        var n = (sequences.map(\.count).min() ?? 1) - 1
        for seq in sequences.dropFirst() {
            var i = 0
            while i < n && seq[i] == first[i] { i += 1 }
            n = i
            if n == 0 { break }
        }
        return max(0, n)
    }

    /// Σ log p(completion | prompt) for `sequences[s][completionStarts[s]...]`, equal to `sequenceLogProbs` but
    /// computing shared prompt tokens once: the tokens every prompt of the call starts with (a few-shot block)
    /// are prefilled once, each distinct prompt once more from there, and the choices that share a prompt
    /// copy its keys and values. Works under ablation; nothing outlives the call.
    public func sharedPrefixLogProbs(sequences: [[Int]], completionStarts: [Int],
                                     ablation: NeuronSet? = nil) throws -> [(logprob: Double, tokens: Int)] {
        try validate(sequences, completionStarts: completionStarts, source: "sharedPrefixLogProbs")
        try validate(ablation)
        if sequences.isEmpty { return [] }
        // The scored chunk starts one token before the completion (that token's logits predict its first
        // token), so the prompt part held in the cache is everything before it.
        let heads = sequences.indices.map { Array(sequences[$0][..<(completionStarts[$0] - 1)]) }
        let session = try DecodeSession(model: self, slots: sequences.count, maxLength: sequences.map(\.count).max()!)
        var common = heads[0].count
        for h in heads.dropFirst() {
            var i = 0
            while i < min(common, h.count) && h[i] == heads[0][i] { i += 1 }
            common = i
        }
        if common > 0 {
            try session.prefill([Array(heads[0][..<common])], to: [0], ablation: ablation)
            for s in 1..<sequences.count { try session.copyPrefix(from: 0, to: s, count: common) }
        }
        var owner: [[Int]: Int] = [:]
        var owners: [Int] = [], rests: [[Int]] = []
        for (s, h) in heads.enumerated() where owner[h] == nil {
            owner[h] = s
            if h.count > common { owners.append(s); rests.append(Array(h[common...])) }
        }
        if !rests.isEmpty { try session.prefill(rests, to: owners, ablation: ablation) }
        for (s, h) in heads.enumerated() where owner[h]! != s { try session.copyPrefix(from: owner[h]!, to: s, count: h.count) }
        let sums = try session.appendScoring(sequences.indices.map { Array(sequences[$0][(completionStarts[$0] - 1)...]) },
                                             to: Array(sequences.indices), ablation: ablation)
        return sequences.indices.map { (sums[$0], sequences[$0].count - completionStarts[$0]) }
    }

    /// Σ log p(completion | prompt) for `sequences[s][completionStarts[s]...]`, like `sequenceLogProbs`, but
    /// each prompt's keys/values (all its tokens but the last) come from `prefixes` when it holds them and are
    /// added to it otherwise: scoring many completions of the same prompts (the fluency check of every attack
    /// cell) then runs each prompt once. No ablation: the cache holds this model's intact states only.
    public func completionLogProbs(sequences: [[Int]], completionStarts: [Int],
                                   prefixes: PrefixCache) throws -> [(logprob: Double, tokens: Int)] {
        try validate(sequences, completionStarts: completionStarts, source: "completionLogProbs")
        guard ablatedDirection == nil else {
            throw InferenceError.invalidInput(source: "completionLogProbs",
                reason: "the prompt cache holds intact states; clear the ablated direction first")
        }
        if sequences.isEmpty { return [] }
        let heads = sequences.indices.map { Array(sequences[$0][..<(completionStarts[$0] - 1)]) }
        var missing: [[Int]] = []
        var seen = Set<[Int]>()
        for h in heads where !h.isEmpty && prefixes.states[h] == nil && seen.insert(h).inserted { missing.append(h) }
        if !missing.isEmpty {
            let session = try DecodeSession(model: self, slots: missing.count, maxLength: missing.map(\.count).max()!)
            _ = try session.append(missing, to: Array(missing.indices))
            for (i, h) in missing.enumerated() { prefixes.states[h] = session.exportSlot(i) }
        }
        let session = try DecodeSession(model: self, slots: sequences.count, maxLength: sequences.map(\.count).max()!)
        for (s, h) in heads.enumerated() where !h.isEmpty { session.importSlot(s, from: prefixes.states[h]!, count: h.count) }
        let sums = try session.appendScoring(sequences.indices.map { Array(sequences[$0][(completionStarts[$0] - 1)...]) },
                                             to: Array(sequences.indices))
        return sequences.indices.map { (sums[$0], sequences[$0].count - completionStarts[$0]) }
    }
}

/// Keys/values of token prefixes under one model's intact weights, kept across calls of
/// `completionLogProbs` (a prompt of 60 tokens holds about 2.8 MB for SmolLM2-135M).
public final class PrefixCache {
    var states: [[Int]: [Float]] = [:]
    public init() {}
    public var count: Int { states.count }
}
