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

/// Llama-family causal LM forward pass (Llama 2/3.x, Mistral without sliding window, Qwen2, SmolLM2),
/// numerically following Hugging Face transformers in f32.
///
/// A batch is ragged: all rows of all sequences are packed into one [totalTokens × hidden] matrix so
/// every projection is a single sgemm; attention stays within each sequence and positions restart at 0.
/// Weights are read live on every call, so in-place weight updates (training) are seen immediately.
/// One instance runs one call at a time (it reuses its scratch buffers); it is not reentrant.
public final class LlamaModel: @unchecked Sendable {
    public let weights: LlamaWeights
    public var config: LlamaConfig { weights.config }
    let rope: RotaryEmbedding
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

    public init(weights: LlamaWeights) throws {
        let c = weights.config
        try c.validate(source: "LlamaModel")
        try Self.checkShapes(weights)
        self.weights = weights
        var llama3: RotaryEmbedding.Llama3Scaling?
        if let s = c.ropeScaling {
            switch s.ropeType {
            case "llama3":
                llama3 = .init(factor: s.factor, lowFreqFactor: s.lowFreqFactor, highFreqFactor: s.highFreqFactor,
                               originalMaxPositionEmbeddings: s.originalMaxPositionEmbeddings)
            case "default", "":
                break
            default:
                throw TransformerError.unsupported(source: "LlamaModel", reason: "rope_scaling type '\(s.ropeType)'")
            }
        }
        rope = RotaryEmbedding(headDim: c.headDim, theta: c.ropeTheta, llama3: llama3)
        ws = Workspace(config: c)
    }

    static func checkShapes(_ w: LlamaWeights) throws {
        let c = w.config
        func check(_ name: String, _ t: Tensor?, _ shape: [Int]) throws {
            guard let t else { throw TransformerError.missingTensor(source: "LlamaModel", name: name) }
            if t.shape != shape {
                throw TransformerError.shapeMismatch(source: "LlamaModel", name: name, expected: shape, found: t.shape)
            }
        }
        try check("model.embed_tokens.weight", w.embedTokens, [c.vocabSize, c.hiddenSize])
        try check("model.norm.weight", w.norm, [c.hiddenSize])
        if !c.tieWordEmbeddings { try check("lm_head.weight", w.lmHead, [c.vocabSize, c.hiddenSize]) }
        if w.layers.count != c.numHiddenLayers {
            throw TransformerError.invalidConfig(source: "LlamaModel",
                reason: "\(w.layers.count) layers present, config says \(c.numHiddenLayers)")
        }
        for (i, l) in w.layers.enumerated() {
            let p = "model.layers.\(i)."
            try check(p + "input_layernorm.weight", l.inputNorm, [c.hiddenSize])
            try check(p + "post_attention_layernorm.weight", l.postAttentionNorm, [c.hiddenSize])
            try check(p + "self_attn.q_proj.weight", l.qProj, [c.qDim, c.hiddenSize])
            try check(p + "self_attn.k_proj.weight", l.kProj, [c.kvDim, c.hiddenSize])
            try check(p + "self_attn.v_proj.weight", l.vProj, [c.kvDim, c.hiddenSize])
            try check(p + "self_attn.o_proj.weight", l.oProj, [c.hiddenSize, c.qDim])
            if c.attentionBias {
                try check(p + "self_attn.q_proj.bias", l.qBias, [c.qDim])
                try check(p + "self_attn.k_proj.bias", l.kBias, [c.kvDim])
                try check(p + "self_attn.v_proj.bias", l.vBias, [c.kvDim])
            }
            try check(p + "mlp.gate_proj.weight", l.gateProj, [c.intermediateSize, c.hiddenSize])
            try check(p + "mlp.up_proj.weight", l.upProj, [c.intermediateSize, c.hiddenSize])
            try check(p + "mlp.down_proj.weight", l.downProj, [c.hiddenSize, c.intermediateSize])
        }
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
        let c = config
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
        rope.reserve(positions: (plan.positions.max() ?? 0) + 1)
        let eps = Float(c.rmsNormEps)
        let scale = Float(1 / Double(c.headDim).squareRoot())
        plan.tokens.withUnsafeBufferPointer { tok in
            Kernels.gatherRows(weights.embedTokens.pointer, rowLength: H, indices: tok, into: ws.x)
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
            // Key counts: causal, so row at position p sees p + 1 keys.
            for r in 0..<rows { ws.keyCount[r] = pos[r] + 1 }
            for (l, layer) in weights.layers.enumerated() {
                let cl = small ? compact?.layers[l] : nil
                residual(l)
                Kernels.rmsNorm(ws.x, rows: rows, dim: H, weight: layer.inputNorm.pointer, eps: eps, into: ws.xn)
                if let cl {
                    cl.qkv.apply(ws.xn, count: rows, into: ws.q, ws.k, ws.v)
                } else {
                    BLAS.linear(ws.xn, count: rows, inFeatures: H, weight: layer.qkv.pointer, outFeatures: qDim + 2 * kvDim, into: ws.fused)
                    Kernels.splitColumns(ws.fused, rows: rows, into: [(ws.q, qDim), (ws.k, kvDim), (ws.v, kvDim)])
                }
                if let b = layer.qBias { Kernels.addBias(b.pointer, rows: rows, dim: qDim, to: ws.q) }
                if let b = layer.kBias { Kernels.addBias(b.pointer, rows: rows, dim: kvDim, to: ws.k) }
                if let b = layer.vBias { Kernels.addBias(b.pointer, rows: rows, dim: kvDim, to: ws.v) }
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
                                 keyStart: kstart.baseAddress!, keyCount: ws.keyCount, maxKeys: plan.maxKeys,
                                 out: ws.att, outStride: qDim, scratch: ws.scores)
                linear(ws.att, qDim, layer.oProj, cl?.o, H, ws.x, accumulate: true)
                if let direction { projectOut(direction, rows: rows) }
                Kernels.rmsNorm(ws.x, rows: rows, dim: H, weight: layer.postAttentionNorm.pointer, eps: eps, into: ws.xn)
                if let cl {
                    cl.gateUp.apply(ws.xn, count: rows, into: ws.gate, ws.up, nil)
                } else {
                    BLAS.linear(ws.xn, count: rows, inFeatures: H, weight: layer.gateUp.pointer, outFeatures: 2 * I, into: ws.fused)
                    Kernels.splitColumns(ws.fused, rows: rows, into: [(ws.gate, I), (ws.up, I)])
                }
                Kernels.swiglu(gate: ws.gate, up: ws.up, count: rows * I)
                if l < ablate.count, !ablate[l].isEmpty {
                    ablate[l].withUnsafeBufferPointer { cols in
                        Kernels.zeroColumns(ws.gate, rows: rows, stride: I, columns: cols)
                    }
                }
                if let tap {
                    for s in plan.seqStart.indices where plan.seqRows[s] > 0 {
                        let base = ws.gate + plan.seqStart[s] * I
                        tap(l, s, UnsafeBufferPointer(start: base, count: plan.seqRows[s] * I), plan.seqRows[s])
                    }
                }
                linear(ws.gate, I, layer.downProj, cl?.down, H, ws.x, accumulate: true)
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
        Kernels.rmsNorm(ws.head, rows: rows.count, dim: H, weight: weights.norm.pointer, eps: Float(c.rmsNormEps), into: ws.head)
        if let compact, rows.count <= Int8Matrix.maxBatch {
            compact.lmHead.apply(ws.head, count: rows.count, into: out, accumulate: false)
        } else {
            BLAS.linear(ws.head, count: rows.count, inFeatures: H, weight: weights.outputWeight.pointer,
                        outFeatures: c.vocabSize, into: out)
        }
    }
}

/// Reusable scratch for one model: grows to the largest batch seen, never shrinks.
final class Workspace {
    let config: LlamaConfig
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
    var scores = UnsafeMutablePointer<Float>.allocate(capacity: 1)
    var head = UnsafeMutablePointer<Float>.allocate(capacity: 1)
    /// Output of a stacked product (qkv or gate/up) before it is split into its parts.
    var fused = UnsafeMutablePointer<Float>.allocate(capacity: 1)

    init(config: LlamaConfig) { self.config = config }

    deinit {
        for p in [x, xn, q, k, v, att, gate, up, scores, head, fused] { p.deallocate() }
        keyCount.deallocate()
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
            keyCount.deallocate(); keyCount = .allocate(capacity: n)
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
