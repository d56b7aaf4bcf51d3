import Foundation
import Tensors

/// Which rows of each sequence get LM-head logits.
public enum LogitsSelection: Sendable, Equatable {
    /// Every position: [len × vocab] per sequence.
    case all
    /// The last position only: [1 × vocab] per sequence.
    case last
    /// The listed positions of each sequence (one list per sequence): [count × vocab].
    case positions([[Int]])
}

/// Called once per (layer, sequence) with that sequence's down_proj input [rows × intermediate]
/// (after any ablation). The buffer is scratch: copy what you keep.
public typealias ActivationTap = (_ layer: Int, _ seqIndex: Int, _ activations: UnsafeBufferPointer<Float>, _ rows: Int) -> Void

/// Called once per (point, sequence) with that sequence's residual stream [rows × hidden]: point l < layers is the
/// input of decoder layer l (Hugging Face's `hidden_states[l]`), point `layers` the residual after the last layer,
/// before the final norm. Seen after any direction ablation. The buffer is scratch: copy what you keep.
public typealias ResidualTap = (_ point: Int, _ seqIndex: Int, _ residual: UnsafeBufferPointer<Float>, _ rows: Int) -> Void

public enum InferenceError: Error, CustomStringConvertible, Equatable {
    case invalidInput(source: String, reason: String)

    public var description: String {
        switch self {
        case let .invalidInput(s, r): return "\(s): invalid input: \(r)"
        }
    }
}

/// Causal LM forward pass for every architecture description (Llama 2/3.x, Mistral, Qwen2, SmolLM2, Gemma 3),
/// numerically following Hugging Face transformers in f32. The layer recipe of the configuration decides norm
/// placement and form, the MLP activation, QK-norm, per-layer windows and RoPE, and the scalings.
///
/// A batch is ragged: all rows of all sequences are packed into one [totalTokens × hidden] matrix so
/// every projection is a single sgemm; attention stays within each sequence and positions restart at 0.
/// Weights are read live on every call, so in-place weight updates (training) are seen immediately.
/// One instance runs one call at a time (it reuses its scratch buffers); it is not reentrant.
public final class InferenceModel: @unchecked Sendable {
    public let weights: ModelWeights
    public var config: ModelConfig { weights.config }
    /// One table per distinct RoPE setting; `layerRope[l]` picks layer l's.
    let ropes: [RotaryEmbedding]
    let layerRope: [Int]
    let ws: Workspace
    /// What decode steps of at most `Int8Matrix.maxBatch` rows multiply with (prefill, `forward`,
    /// `sequenceLogProbs` and larger batches always use the f32 weights).
    public var decodeWeights: DecodeWeights = .environmentDefault
    var compact: CompactWeights?
    /// Checksum of weights found not to be exactly representable (auto mode then decodes them in f32).
    var inexactChecksum: UInt64?
    /// Unit vector projected out of the residual stream in every pass while set (`setAblatedDirection`).
    public internal(set) var ablatedDirection: [Float]?

    /// The block-int8 copies for a decode session, rebuilt when the f32 weights changed since they were made;
    /// nil when decoding in f32.
    func compactWeightsForDecode() -> CompactWeights? {
        guard decodeWeights != .f32 else { compact = nil; return nil }
        let sum = CompactWeights.checksum(weights)
        if let c = compact, c.checksum == sum { return decodeWeights == .int8 || c.isExact ? c : nil }
        if decodeWeights == .auto, inexactChecksum == sum { return nil }
        compact = nil   // free the stale copies before building new ones
        guard let c = CompactWeights(weights, checksum: sum, requireExact: decodeWeights == .auto) else {
            inexactChecksum = sum   // these weights decode in f32; do not try again until they change
            return nil
        }
        compact = c
        return decodeWeights == .int8 || c.isExact ? c : nil
    }

    public init(weights: ModelWeights) throws {
        let c = weights.config
        try c.validate(source: "InferenceModel")
        try weights.checkShapes(source: "InferenceModel")
        self.weights = weights
        (ropes, layerRope) = Self.rotaryTables(c)
        ws = Workspace(config: c)
    }

    /// The RoPE tables of a configuration: one per distinct (base, scaling), and each layer's index into them.
    static func rotaryTables(_ c: ModelConfig) -> ([RotaryEmbedding], [Int]) {
        var settings: [ModelConfig.RopeSettings] = [], index: [Int] = []
        for l in 0..<c.numHiddenLayers {
            let r = c.rope(layer: l)
            if let i = settings.firstIndex(of: r) { index.append(i) } else { index.append(settings.count); settings.append(r) }
        }
        if settings.isEmpty { settings.append(c.rope(layer: 0)) }
        let tables = settings.map { r in
            RotaryEmbedding(headDim: c.headDim, theta: r.theta, scaling: r.scaling.map { s in
                s.ropeType == "linear" ? .linear(factor: s.factor)
                    : .llama3(.init(factor: s.factor, lowFreqFactor: s.lowFreqFactor, highFreqFactor: s.highFreqFactor,
                                    originalMaxPositionEmbeddings: s.originalMaxPositionEmbeddings))
            })
        }
        return (tables, index)
    }

    // MARK: - Public entry points

    /// Logits for a ragged batch. Returns one tensor per sequence: [len × vocab] for `.all`,
    /// [1 × vocab] for `.last`, [positions.count × vocab] for `.positions`.
    /// An unlabeled trailing closure is the `activationTap` (kept last for that reason).
    public func forward(sequences: [[Int]], logitsFor selection: LogitsSelection = .all,
                        ablation: NeuronSet? = nil, residualTap: ResidualTap? = nil,
                        activationTap: ActivationTap? = nil) throws -> [Tensor] {
        try validate(sequences, source: "forward")
        try validate(ablation)
        var rowLists: [[Int]]
        switch selection {
        case .all: rowLists = sequences.map { Array(0..<$0.count) }
        case .last: rowLists = sequences.map { [$0.count - 1] }
        case .positions(let ps):
            guard ps.count == sequences.count else {
                throw InferenceError.invalidInput(source: "forward",
                    reason: "\(ps.count) position lists for \(sequences.count) sequences")
            }
            for (s, list) in ps.enumerated() {
                for p in list where p < 0 || p >= sequences[s].count {
                    throw InferenceError.invalidInput(source: "forward",
                        reason: "position \(p) outside sequence \(s) of length \(sequences[s].count)")
                }
            }
            rowLists = ps
        }
        let plan = Plan(sequences: sequences)
        runBody(plan, cache: nil, ablation: ablation, tap: activationTap, residualTap: residualTap)
        let vocab = config.vocabSize
        var out: [Tensor] = []
        out.reserveCapacity(sequences.count)
        for (s, list) in rowLists.enumerated() {
            let t = Tensor(shape: [list.count, vocab], zeroed: false)
            let rows = list.map { plan.seqStart[s] + $0 }
            lmHead(rows: rows, into: t.pointer)
            out.append(t)
        }
        rowLists.removeAll()
        return out
    }

    /// Σ over completion tokens t ≥ start of log softmax(logits[t-1])[token t], per sequence.
    /// Only the rows that predict completion tokens go through the LM head, in bounded chunks.
    public func sequenceLogProbs(sequences: [[Int]], completionStarts: [Int],
                                 ablation: NeuronSet? = nil) throws -> [(logprob: Double, tokens: Int)] {
        try validate(sequences, completionStarts: completionStarts, source: "sequenceLogProbs")
        try validate(ablation)
        let plan = Plan(sequences: sequences)
        runBody(plan, cache: nil, ablation: ablation, tap: nil)
        // (packed row predicting the token, target token, sequence)
        var jobs: [(row: Int, target: Int, seq: Int)] = []
        for (s, seq) in sequences.enumerated() {
            for t in completionStarts[s]..<seq.count { jobs.append((plan.seqStart[s] + t - 1, seq[t], s)) }
        }
        let sums = targetLogProbs(jobs, sequences: sequences.count)
        return sequences.indices.map { (sums[$0], sequences[$0].count - completionStarts[$0]) }
    }

    /// Σ log softmax(lmHead(row))[target] per sequence over `jobs` (packed rows of `ws.x`), in bounded chunks.
    func targetLogProbs(_ jobs: [(row: Int, target: Int, seq: Int)], sequences: Int) -> [Double] {
        var sums = [Double](repeating: 0, count: sequences)
        let vocab = config.vocabSize
        let chunk = max(1, min(256, (64 << 20) / (4 * vocab)))
        let buf = Tensor(shape: [min(chunk, max(1, jobs.count)), vocab], zeroed: false)
        var lo = 0
        while lo < jobs.count {
            let hi = min(jobs.count, lo + chunk)
            lmHead(rows: jobs[lo..<hi].map { $0.row }, into: buf.pointer)
            var lps = [Double](repeating: 0, count: hi - lo)
            lps.withUnsafeMutableBufferPointer { lp in
                Parallel.forEach(hi - lo) { i in
                    let row = buf.pointer + i * vocab
                    lp[i] = Double(row[jobs[lo + i].target]) - Kernels.logSumExp(row, count: vocab)
                }
            }
            for i in 0..<(hi - lo) { sums[jobs[lo + i].seq] += lps[i] }
            lo = hi
        }
        return sums
    }

    // MARK: - Validation

    func validate(_ sequences: [[Int]], source: String) throws {
        let vocab = config.vocabSize
        for (s, seq) in sequences.enumerated() {
            if seq.isEmpty { throw InferenceError.invalidInput(source: source, reason: "sequence \(s) is empty") }
            for (i, t) in seq.enumerated() where t < 0 || t >= vocab {
                throw InferenceError.invalidInput(source: source,
                    reason: "token \(t) at position \(i) of sequence \(s) is outside the vocabulary (\(vocab))")
            }
        }
    }

    /// Valid token sequences, each with a completion start in 1...count (its first token only conditions).
    func validate(_ sequences: [[Int]], completionStarts: [Int], source: String) throws {
        try validate(sequences, source: source)
        guard completionStarts.count == sequences.count else {
            throw InferenceError.invalidInput(source: source,
                reason: "\(completionStarts.count) completion starts for \(sequences.count) sequences")
        }
        for (s, st) in completionStarts.enumerated() where st < 1 || st > sequences[s].count {
            throw InferenceError.invalidInput(source: source,
                reason: "completion start \(st) of sequence \(s) must be in 1...\(sequences[s].count)")
        }
    }

    func validate(_ ablation: NeuronSet?) throws {
        guard let a = ablation else { return }
        let c = config
        if a.layerCount != c.numHiddenLayers {
            throw InferenceError.invalidInput(source: "ablation",
                reason: "neuron set covers \(a.layerCount) layers, model has \(c.numHiddenLayers)")
        }
        for (l, js) in a.perLayer.enumerated() {
            for j in js where j < 0 || j >= c.intermediateSize {
                throw InferenceError.invalidInput(source: "ablation",
                    reason: "neuron [\(l), \(j)] outside intermediate size \(c.intermediateSize)")
            }
        }
    }

    // MARK: - Core

    /// Row layout of one packed batch.
    struct Plan {
        var tokens: [Int]       // per row
        var positions: [Int]    // per row
        var keyStart: [Int]     // per row: first key row of its sequence (in the key buffer used)
        var seqOf: [Int]        // per row: index into the batch's sequences
        var seqStart: [Int]     // per sequence: first packed row
        var seqRows: [Int]      // per sequence: rows in this batch
        var maxKeys: Int

        var rows: Int { tokens.count }

        /// Fresh sequences, no cache: keys are the batch's own rows.
        init(sequences: [[Int]]) {
            tokens = []; positions = []; keyStart = []; seqOf = []; seqStart = []; seqRows = []
            maxKeys = 0
            for (s, seq) in sequences.enumerated() {
                let start = tokens.count
                seqStart.append(start); seqRows.append(seq.count)
                for (p, t) in seq.enumerated() {
                    tokens.append(t); positions.append(p); keyStart.append(start); seqOf.append(s)
                }
                maxKeys = max(maxKeys, seq.count)
            }
        }

        /// Rows appended to cached sequences: `slots[i]` is the cache slot of `chunks[i]`, whose first
        /// token sits at position `startPositions[i]`.
        init(chunks: [[Int]], slots: [Int], startPositions: [Int], slotStride: Int) {
            tokens = []; positions = []; keyStart = []; seqOf = []; seqStart = []; seqRows = []
            maxKeys = 0
            for (i, chunk) in chunks.enumerated() {
                seqStart.append(tokens.count); seqRows.append(chunk.count)
                for (k, t) in chunk.enumerated() {
                    tokens.append(t); positions.append(startPositions[i] + k)
                    keyStart.append(slots[i] * slotStride); seqOf.append(i)
                }
                maxKeys = max(maxKeys, startPositions[i] + chunk.count)
            }
        }
    }

    /// Runs embedding + all decoder layers; leaves the residual stream in `ws.x` (not final-normed).
    /// With a cache, this batch's keys/values are written at their positions in each row's slot and
    /// attention reads the slot; `cacheSlots[seq]` gives the slot of each batch sequence.
    /// With `ablatedDirection` set, the direction is projected out of the residual stream wherever it is read:
    /// before every layer, between attention and MLP, and after the last layer.
    func runBody(_ plan: Plan, cache: KVCache?, cacheSlots: [Int] = [], ablation: NeuronSet?, tap: ActivationTap?,
                 compact: CompactWeights? = nil, residualTap: ResidualTap? = nil) {
        let c = config, recipe = c.recipe
        let rows = plan.rows
        let small = compact != nil && rows <= Int8Matrix.maxBatch
        // Small decode batches go through the compact copies; everything else through sgemm on f32.
        func linear(_ x: UnsafePointer<Float>, _ inF: Int, _ w: Tensor, _ cw: (any DecodeMatrix)?, _ outF: Int,
                    _ out: UnsafeMutablePointer<Float>, accumulate: Bool = false) {
            if small, let cw {
                cw.apply(x, count: rows, into: out, accumulate: accumulate)
            } else {
                BLAS.linear(x, count: rows, inFeatures: inF, weight: w.pointer, outFeatures: outF, into: out, accumulate: accumulate)
            }
        }
        let H = c.hiddenSize, I = c.intermediateSize, qDim = c.qDim, kvDim = c.kvDim
        ws.ensure(rows: rows, maxKeys: plan.maxKeys)
        let maxPosition = (plan.positions.max() ?? 0) + 1
        for r in ropes { r.reserve(positions: maxPosition) }
        let eps = Float(c.rmsNormEps), offset = recipe.normWeightOffset
        let scale = c.queryKeyScale
        let softcap = c.attentionLogitSoftcap.map { Float($0) }
        let activation: Kernels.GateActivation = recipe.activation == .silu ? .silu : .geluTanh
        let sandwich = recipe.normPlacement == .sandwich
        func norm(_ x: UnsafePointer<Float>, _ w: Tensor, rows n: Int, dim: Int, into out: UnsafeMutablePointer<Float>) {
            Kernels.rmsNorm(x, rows: n, dim: dim, weight: w.pointer, weightOffset: offset, eps: eps, into: out)
        }
        plan.tokens.withUnsafeBufferPointer { tok in
            Kernels.gatherRows(weights.embedTokens.pointer, rowLength: H, indices: tok, into: ws.x)
        }
        if let s = c.embeddingScale {
            let f = Float(s), x = ws.x
            Parallel.forRanges(rows * H, minChunk: 1 << 15) { r in for i in r { x[i] *= f } }
        }
        let ablate = ablation.map { $0.perLayer } ?? []
        let direction = ablatedDirection
        func residual(_ point: Int) {
            if let direction { projectOut(direction, rows: rows) }
            if let residualTap {
                for s in plan.seqStart.indices where plan.seqRows[s] > 0 {
                    residualTap(point, s, UnsafeBufferPointer(start: ws.x + plan.seqStart[s] * H, count: plan.seqRows[s] * H), plan.seqRows[s])
                }
            }
        }
        plan.positions.withUnsafeBufferPointer { pos in
        plan.keyStart.withUnsafeBufferPointer { kstart in
            // Key spans: causal, so a row at position p sees keys 0...p; in a window of w, keys p-w+1...p.
            for r in 0..<rows { ws.keyCount[r] = pos[r] + 1; ws.keyStart[r] = kstart[r] }
            if let w = c.slidingWindow, c.layerTypes.contains(.sliding) {
                for r in 0..<rows {
                    let first = max(0, pos[r] + 1 - w)
                    ws.windowStart[r] = kstart[r] + first; ws.windowCount[r] = pos[r] + 1 - first
                }
            }
            for (l, layer) in weights.layers.enumerated() {
                let cl = small ? compact?.layers[l] : nil
                let rope = ropes[layerRope[l]]
                let windowed = c.window(layer: l) != nil
                residual(l)
                norm(ws.x, layer.inputNorm, rows: rows, dim: H, into: ws.xn)
                if let cl {
                    cl.qkv.apply(ws.xn, count: rows, into: ws.q, ws.k, ws.v)
                } else {
                    BLAS.linear(ws.xn, count: rows, inFeatures: H, weight: layer.qkv.pointer, outFeatures: qDim + 2 * kvDim, into: ws.fused)
                    Kernels.splitColumns(ws.fused, rows: rows, into: [(ws.q, qDim), (ws.k, kvDim), (ws.v, kvDim)])
                }
                if let b = layer.qBias { Kernels.addBias(b.pointer, rows: rows, dim: qDim, to: ws.q) }
                if let b = layer.kBias { Kernels.addBias(b.pointer, rows: rows, dim: kvDim, to: ws.k) }
                if let b = layer.vBias { Kernels.addBias(b.pointer, rows: rows, dim: kvDim, to: ws.v) }
                if let qn = layer.qNorm, let kn = layer.kNorm {
                    norm(ws.q, qn, rows: rows * c.numAttentionHeads, dim: c.headDim, into: ws.q)
                    norm(ws.k, kn, rows: rows * c.numKeyValueHeads, dim: c.headDim, into: ws.k)
                }
                rope.apply(rows: rows, ws.q, stride: qDim, heads: c.numAttentionHeads, positions: pos.baseAddress!)
                rope.apply(rows: rows, ws.k, stride: kvDim, heads: c.numKeyValueHeads, positions: pos.baseAddress!)
                let keys: UnsafePointer<Float>, values: UnsafePointer<Float>
                if let cache {
                    let kc = cache.keys[l], vc = cache.values[l]
                    for r in 0..<rows {
                        let dst = (kstart[r] + pos[r]) * kvDim
                        (kc + dst).update(from: ws.k + r * kvDim, count: kvDim)
                        (vc + dst).update(from: ws.v + r * kvDim, count: kvDim)
                    }
                    keys = UnsafePointer(kc); values = UnsafePointer(vc)
                } else {
                    keys = UnsafePointer(ws.k); values = UnsafePointer(ws.v)
                }
                Attention.causal(q: ws.q, qStride: qDim, rows: rows, heads: c.numAttentionHeads,
                                 kvHeads: c.numKeyValueHeads, headDim: c.headDim, scale: scale,
                                 keys: keys, values: values, kvStride: kvDim,
                                 keyStart: windowed ? ws.windowStart : ws.keyStart,
                                 keyCount: windowed ? ws.windowCount : ws.keyCount, maxKeys: plan.maxKeys,
                                 out: ws.att, outStride: qDim, scratch: ws.scores, softcap: softcap)
                if let post = layer.attnOutputNorm {
                    linear(ws.att, qDim, layer.oProj, cl?.o, H, ws.xn)
                    norm(ws.xn, post, rows: rows, dim: H, into: ws.xn)
                    Kernels.add(ws.xn, into: ws.x, count: rows * H)
                } else {
                    linear(ws.att, qDim, layer.oProj, cl?.o, H, ws.x, accumulate: true)
                }
                if let direction { projectOut(direction, rows: rows) }
                norm(ws.x, layer.mlpNorm, rows: rows, dim: H, into: ws.xn)
                if let cl {
                    cl.gateUp.apply(ws.xn, count: rows, into: ws.gate, ws.up, nil)
                } else {
                    BLAS.linear(ws.xn, count: rows, inFeatures: H, weight: layer.gateUp.pointer, outFeatures: 2 * I, into: ws.fused)
                    Kernels.splitColumns(ws.fused, rows: rows, into: [(ws.gate, I), (ws.up, I)])
                }
                Kernels.gatedActivation(activation, gate: ws.gate, up: ws.up, into: ws.gate, rows: rows, dim: I,
                                        zeroColumns: l < ablate.count ? ablate[l] : [])
                if let tap {
                    for s in plan.seqStart.indices where plan.seqRows[s] > 0 {
                        let base = ws.gate + plan.seqStart[s] * I
                        tap(l, s, UnsafeBufferPointer(start: base, count: plan.seqRows[s] * I), plan.seqRows[s])
                    }
                }
                if sandwich, let post = layer.mlpOutputNorm {
                    linear(ws.gate, I, layer.downProj, cl?.down, H, ws.xn)
                    norm(ws.xn, post, rows: rows, dim: H, into: ws.xn)
                    Kernels.add(ws.xn, into: ws.x, count: rows * H)
                } else {
                    linear(ws.gate, I, layer.downProj, cl?.down, H, ws.x, accumulate: true)
                }
            }
            residual(weights.layers.count)
        }
        }
    }

    /// Final norm + LM head for the listed packed rows of `ws.x`, written as [rows.count × vocab].
    func lmHead(rows: [Int], into out: UnsafeMutablePointer<Float>, compact: CompactWeights? = nil) {
        if rows.isEmpty { return }
        let c = config, H = c.hiddenSize
        ws.ensureHead(rows: rows.count)
        for (i, r) in rows.enumerated() { (ws.head + i * H).update(from: ws.x + r * H, count: H) }
        Kernels.rmsNorm(ws.head, rows: rows.count, dim: H, weight: weights.norm.pointer, weightOffset: c.recipe.normWeightOffset,
                        eps: Float(c.rmsNormEps), into: ws.head)
        if let compact, rows.count <= Int8Matrix.maxBatch {
            compact.lmHead.apply(ws.head, count: rows.count, into: out, accumulate: false)
        } else {
            BLAS.linear(ws.head, count: rows.count, inFeatures: H, weight: weights.outputWeight.pointer,
                        outFeatures: c.vocabSize, into: out)
        }
        if let cap = c.finalLogitSoftcap.map({ Float($0) }) {
            // transformers: logits / cap, tanh, · cap.
            Parallel.forRanges(rows.count * c.vocabSize, minChunk: 1 << 14) { r in for i in r { out[i] = tanhf(out[i] / cap) * cap } }
        }
    }
}

/// Reusable scratch for one model: grows to the largest batch seen, never shrinks.
final class Workspace {
    let config: ModelConfig
    private(set) var capacity = 0
    private(set) var keyCapacity = 0
    private(set) var headCapacity = 0
    private var scoreWorkers = 0
    var x = UnsafeMutablePointer<Float>.allocate(capacity: 1)
    var xn = UnsafeMutablePointer<Float>.allocate(capacity: 1)
    var q = UnsafeMutablePointer<Float>.allocate(capacity: 1)
    var k = UnsafeMutablePointer<Float>.allocate(capacity: 1)
    var v = UnsafeMutablePointer<Float>.allocate(capacity: 1)
    var att = UnsafeMutablePointer<Float>.allocate(capacity: 1)
    var gate = UnsafeMutablePointer<Float>.allocate(capacity: 1)
    var up = UnsafeMutablePointer<Float>.allocate(capacity: 1)
    var keyCount = UnsafeMutablePointer<Int>.allocate(capacity: 1)
    var keyStart = UnsafeMutablePointer<Int>.allocate(capacity: 1)
    /// Key spans of sliding-window layers.
    var windowStart = UnsafeMutablePointer<Int>.allocate(capacity: 1)
    var windowCount = UnsafeMutablePointer<Int>.allocate(capacity: 1)
    var scores = UnsafeMutablePointer<Float>.allocate(capacity: 1)
    var head = UnsafeMutablePointer<Float>.allocate(capacity: 1)
    /// Output of a stacked product (qkv or gate/up) before it is split into its parts.
    var fused = UnsafeMutablePointer<Float>.allocate(capacity: 1)

    init(config: ModelConfig) { self.config = config }

    deinit {
        for p in [x, xn, q, k, v, att, gate, up, scores, head, fused] { p.deallocate() }
        for p in [keyCount, keyStart, windowStart, windowCount] { p.deallocate() }
    }

    func ensure(rows: Int, maxKeys: Int) {
        if rows > capacity {
            let c = config, n = max(rows, capacity + capacity / 2)
            func re(_ p: inout UnsafeMutablePointer<Float>, _ width: Int) {
                p.deallocate(); p = .allocate(capacity: n * width)
            }
            re(&x, c.hiddenSize); re(&xn, c.hiddenSize); re(&q, c.qDim); re(&k, c.kvDim); re(&v, c.kvDim)
            re(&att, c.qDim); re(&gate, c.intermediateSize); re(&up, c.intermediateSize)
            re(&fused, max(c.qDim + 2 * c.kvDim, 2 * c.intermediateSize))
            for p in [keyCount, keyStart, windowStart, windowCount] { p.deallocate() }
            keyCount = .allocate(capacity: n); keyStart = .allocate(capacity: n)
            windowStart = .allocate(capacity: n); windowCount = .allocate(capacity: n)
            capacity = n
        }
        if maxKeys > keyCapacity || scoreWorkers != Parallel.workers {
            let n = max(maxKeys, keyCapacity * 2)
            scoreWorkers = Parallel.workers
            scores.deallocate(); scores = .allocate(capacity: Attention.scratchCount(maxKeys: n))
            keyCapacity = n
        }
    }

    func ensureHead(rows: Int) {
        if rows > headCapacity {
            head.deallocate(); head = .allocate(capacity: rows * config.hiddenSize); headCapacity = rows
        }
    }
}
