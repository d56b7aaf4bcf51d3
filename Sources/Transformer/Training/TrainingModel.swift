import Foundation
import Tensors

/// One packed sequence: `tokens` (prompt + completion) and the index of the first completion token.
/// Its log-probability is Σ_{t ≥ completionStart} log p(tokens[t] | tokens[..<t]).
public struct TrainingSequence: Sendable, Equatable {
    public var tokens: [Int]
    public var completionStart: Int
    public init(tokens: [Int], completionStart: Int) { self.tokens = tokens; self.completionStart = completionStart }
}

/// Sum of completion-token log-probs of one sequence and how many tokens it covers.
public struct SequenceLogProb: Sendable, Equatable {
    public var sum: Double
    public var count: Int
    public init(sum: Double, count: Int) { self.sum = sum; self.count = count }
}

public enum TrainingError: Error, CustomStringConvertible, Equatable {
    case invalidBatch(reason: String)
    case noForwardState
    public var description: String {
        switch self {
        case let .invalidBatch(r): return "training batch: \(r)"
        case .noForwardState: return "training: backward called without a forward that kept its state"
        }
    }
}

/// Exact f32 training forward/backward for a Llama-family model over a ragged batch.
///
/// Memory: unless layers are recomputed, each layer keeps what its backward needs and cannot cheaply
/// rebuild (q, k, v, attention output, post-attention residual, gate, up, per-row scalars:
/// `keptActivationBytes`); the norms' outputs and the SwiGLU product are recomputed in backward from
/// those. With recomputation only each layer's input [T×H] is kept and the whole layer runs again during
/// backward (one layer's worth live at a time, a third more layer matmul work). The LM head only runs on
/// rows that predict a completion token, in chunks of at most `lmHeadChunkElements` logits; their
/// probabilities are kept for backward when they fit `logitsBudgetBytes`, else recomputed.
public final class TrainingModel: @unchecked Sendable {
    public let weights: ModelWeights
    public let config: ModelConfig
    /// true: always recompute layers in backward; false: always keep activations; nil (default): keep them
    /// when `keptActivationBytes` of the batch is at most `activationBudgetBytes`.
    public var recomputeLayers: Bool?
    public var activationBudgetBytes: Int = 3 << 30
    /// LM-head probabilities of the completion rows [rows × vocab] are kept from forward to backward (saving
    /// the logits' recomputation, a quarter of the LM head's work) when they take at most this many bytes.
    public var logitsBudgetBytes: Int = 1 << 30
    public var lmHeadChunkElements: Int = 1 << 23

    /// The RoPE tables inference uses (one per distinct base and scaling), and each layer's index into them.
    private let ropes: [RotaryEmbedding], layerRope: [Int]
    private var state: ForwardState?

    public init(weights: ModelWeights, recomputeLayers: Bool? = nil) throws {
        try weights.config.validate(source: "training model")
        if weights.config.attentionLogitSoftcap != nil {
            throw TransformerError.unsupported(source: "training model",
                reason: "attention-logit soft-capping (Gemma 2) in the training backward; inference supports it")
        }
        self.weights = weights
        self.config = weights.config
        self.recomputeLayers = recomputeLayers
        (ropes, layerRope) = InferenceModel.rotaryTables(weights.config)
    }

    /// Frees what the last forward kept for backward.
    public func releaseState() { state = nil }

    /// Bytes of per-layer activations a forward over `tokens` packed rows keeps for backward when it does
    /// not recompute layers (beyond the layer inputs, which are kept either way).
    public static func keptActivationBytes(tokens: Int, config c: ModelConfig) -> Int {
        var perTokenLayer = 2 * c.qDim + 2 * c.kvDim + c.hiddenSize + 2 * c.intermediateSize + 2 + c.numAttentionHeads
        if c.recipe.qkNorm { perTokenLayer += c.qDim + c.kvDim + c.numAttentionHeads + c.numKeyValueHeads }
        if c.recipe.normPlacement == .sandwich { perTokenLayer += 2 * c.hiddenSize + 2 }
        return 4 * tokens * perTokenLayer * c.numHiddenLayers
    }

    /// Whether a forward over `tokens` rows recomputes layers in backward under the current settings.
    public func recomputes(tokens: Int) -> Bool {
        recomputeLayers ?? (Self.keptActivationBytes(tokens: tokens, config: config) > activationBudgetBytes)
    }

    // MARK: Saved activations

    /// What one layer's backward reads and cannot cheaply rebuild. q and k are after QK-norm and RoPE; `qPre`/`kPre`
    /// (QK-norm) are the projections before their norm; `attnOut`/`mlpOut` (sandwich) the sublayer outputs before
    /// their post-norm.
    final class LayerActs {
        let q, k, v, att, x2, gate, up: Tensor
        let rstd1, rstd2, lse: Tensor
        let qPre, kPre, rstdQ, rstdK: Tensor?
        let attnOut, mlpOut, rstdAttnOut, rstdMlpOut: Tensor?
        init(T: Int, c: ModelConfig) {
            x2 = Tensor(shape: [T, c.hiddenSize], zeroed: false)
            q = Tensor(shape: [T, c.qDim], zeroed: false); att = Tensor(shape: [T, c.qDim], zeroed: false)
            k = Tensor(shape: [T, c.kvDim], zeroed: false); v = Tensor(shape: [T, c.kvDim], zeroed: false)
            gate = Tensor(shape: [T, c.intermediateSize], zeroed: false)
            up = Tensor(shape: [T, c.intermediateSize], zeroed: false)
            rstd1 = Tensor(shape: [T], zeroed: false); rstd2 = Tensor(shape: [T], zeroed: false)
            lse = Tensor(shape: [T, c.numAttentionHeads], zeroed: false)
            let qk = c.recipe.qkNorm, sandwich = c.recipe.normPlacement == .sandwich
            qPre = qk ? Tensor(shape: [T, c.qDim], zeroed: false) : nil
            kPre = qk ? Tensor(shape: [T, c.kvDim], zeroed: false) : nil
            rstdQ = qk ? Tensor(shape: [T * c.numAttentionHeads], zeroed: false) : nil
            rstdK = qk ? Tensor(shape: [T * c.numKeyValueHeads], zeroed: false) : nil
            attnOut = sandwich ? Tensor(shape: [T, c.hiddenSize], zeroed: false) : nil
            mlpOut = sandwich ? Tensor(shape: [T, c.hiddenSize], zeroed: false) : nil
            rstdAttnOut = sandwich ? Tensor(shape: [T], zeroed: false) : nil
            rstdMlpOut = sandwich ? Tensor(shape: [T], zeroed: false) : nil
        }
    }

    /// The cheap-to-rebuild activations of the layer being processed (shared by all layers).
    final class LayerWork {
        let xn1, xn2, h: Tensor
        init(T: Int, c: ModelConfig) {
            xn1 = Tensor(shape: [T, c.hiddenSize], zeroed: false); xn2 = Tensor(shape: [T, c.hiddenSize], zeroed: false)
            h = Tensor(shape: [T, c.intermediateSize], zeroed: false)
        }
    }

    final class ForwardState {
        var ids: [Int32] = [], positions: [Int32] = [], offsets: [Int] = [], lengths: [Int] = []
        var layerInputs: [Tensor] = []       // x_0 … x_L (x_L = final residual)
        var layerActs: [LayerActs] = []      // only without recompute
        var recompute = true
        var xnf: Tensor!, rstdf: Tensor!
        var rows: [Int] = [], targets: [Int32] = [], rowSeq: [Int] = [], rowLse: [Float] = []
        var probs: Tensor?                   // e^(logit − max) of the LM head rows [R × V], when kept
        var rowInvSum: [Float] = []          // 1 / Σ e^(logit − max) per row: probs · rowInvSum = softmax
        var ablation: NeuronSet?
        var sequenceCount = 0
    }

    // MARK: Forward

    /// Runs the model; returns per-sequence completion log-probs. With `keepForBackward` the state for
    /// `backward` is kept until the next forward or `releaseState()`.
    public func forward(_ batch: [TrainingSequence], ablate: NeuronSet? = nil,
                        keepForBackward: Bool = true) throws -> [SequenceLogProb] {
        state = nil
        let c = config, H = c.hiddenSize
        if let ablate, ablate.layerCount != c.numHiddenLayers {
            throw TrainingError.invalidBatch(reason: "neuron set has \(ablate.layerCount) layers, model has \(c.numHiddenLayers)")
        }
        let st = ForwardState()
        st.ablation = ablate
        st.sequenceCount = batch.count
        var maxLen = 0
        for (s, seq) in batch.enumerated() {
            let L = seq.tokens.count
            guard L >= 1 else { throw TrainingError.invalidBatch(reason: "sequence \(s) is empty") }
            guard seq.completionStart >= 1, seq.completionStart <= L else {
                throw TrainingError.invalidBatch(reason: "sequence \(s): completion start \(seq.completionStart) outside 1...\(L)")
            }
            guard L <= c.maxPositionEmbeddings * 64 else {
                throw TrainingError.invalidBatch(reason: "sequence \(s) has \(L) tokens, too long")
            }
            st.offsets.append(st.ids.count); st.lengths.append(L)
            for (t, tok) in seq.tokens.enumerated() {
                guard tok >= 0, tok < c.vocabSize else {
                    throw TrainingError.invalidBatch(reason: "sequence \(s) token \(t) = \(tok) outside vocabulary \(c.vocabSize)")
                }
                st.ids.append(Int32(tok)); st.positions.append(Int32(t))
                if t >= seq.completionStart {
                    st.rows.append(st.offsets[s] + t - 1); st.targets.append(Int32(tok)); st.rowSeq.append(s)
                }
            }
            maxLen = max(maxLen, L)
        }
        let T = st.ids.count
        st.recompute = recomputes(tokens: T)
        let keepActs = keepForBackward && !st.recompute
        for r in ropes { r.reserve(positions: maxLen) }
        let scratch = UnsafeMutablePointer<Float>.allocate(capacity: TrainAttention.scratchCount(maxLen: maxLen))
        defer { scratch.deallocate() }

        var x = Tensor(shape: [T, H], zeroed: false)
        TrainOps.embeddingForward(x.pointer, ids: st.ids, table: weights.embedTokens.pointer, hidden: H,
                                  scale: c.embeddingScale.map { Float($0) })
        let work = LayerWork(T: T, c: c)
        let reuse = keepActs ? nil : LayerActs(T: T, c: c)
        for l in 0..<c.numHiddenLayers {
            let acts = reuse ?? LayerActs(T: T, c: c)
            let out = Tensor(shape: [T, H], zeroed: false)
            layerForward(l, x: x, out: out, acts: acts, work: work, st: st, scratch: scratch)
            if keepForBackward {
                st.layerInputs.append(x)
                if keepActs { st.layerActs.append(acts) }
            }
            x = out
        }
        if keepForBackward { st.layerInputs.append(x) }
        let xnf = Tensor(shape: [T, H], zeroed: false), rstdf = Tensor(shape: [T], zeroed: false)
        Kernels.rmsNorm(x.pointer, rows: T, dim: H, weight: weights.norm.pointer, weightOffset: c.recipe.normWeightOffset,
                        eps: Float(c.rmsNormEps), into: xnf.pointer, rstd: rstdf.pointer)
        st.xnf = xnf; st.rstdf = rstdf

        // LM head on the completion-predicting rows only.
        let R = st.rows.count, V = c.vocabSize
        let lseP = UnsafeMutablePointer<Float>.allocate(capacity: max(1, R))
        let invP = UnsafeMutablePointer<Float>.allocate(capacity: max(1, R))
        let logpP = UnsafeMutablePointer<Float>.allocate(capacity: max(1, R))
        let targetsP = UnsafeMutablePointer<Int32>.allocate(capacity: max(1, R))
        targetsP.initialize(from: st.targets, count: R)
        defer { lseP.deallocate(); invP.deallocate(); logpP.deallocate(); targetsP.deallocate() }
        // Soft-capped logits are always recomputed in backward: its chain rule needs the capped values themselves.
        let softcap = c.finalLogitSoftcap.map { Float($0) }
        let probs: Tensor? = keepForBackward && softcap == nil && R * V <= logitsBudgetBytes / 4
            ? Tensor(shape: [R, V], zeroed: false) : nil
        let chunk = max(1, min(R, lmHeadChunkElements / V))
        let buf = UnsafeMutablePointer<Float>.allocate(capacity: max(1, chunk * H))
        let scratchLogits: UnsafeMutablePointer<Float>? = probs == nil ? .allocate(capacity: max(1, chunk * V)) : nil
        defer { buf.deallocate(); scratchLogits?.deallocate() }
        let W = weights.outputWeight.pointer
        var r0 = 0
        while r0 < R {
            let n = min(chunk, R - r0)
            let logits = probs.map { $0.pointer + r0 * V } ?? scratchLogits!
            for i in 0..<n { (buf + i * H).update(from: xnf.pointer + st.rows[r0 + i] * H, count: H) }
            BLAS.linear(buf, count: n, inFeatures: H, weight: W, outFeatures: V, into: logits)
            if let cap = softcap { Self.softcap(logits, n * V, cap) }
            let lseOut = lseP + r0, inv = invP + r0, lp = logpP + r0, tg = targetsP + r0
            Parallel.forRanges(n) { rr in
                for i in rr {
                    let row = logits + i * V
                    let target = row[Int(tg[i])]
                    let m = Vec.max(row, V)
                    let s = Vec.expShift(row, V, m)
                    let lse = m + logf(s)
                    lseOut[i] = lse
                    lp[i] = target - lse
                    inv[i] = 1 / s   // normalising is folded into backward's scaling pass
                }
            }
            r0 += n
        }
        st.probs = probs
        st.rowLse = Array(UnsafeBufferPointer(start: lseP, count: R))
        st.rowInvSum = Array(UnsafeBufferPointer(start: invP, count: R))
        var out = [SequenceLogProb](repeating: SequenceLogProb(sum: 0, count: 0), count: batch.count)
        for i in 0..<R { out[st.rowSeq[i]].sum += Double(logpP[i]); out[st.rowSeq[i]].count += 1 }
        if keepForBackward { state = st }
        return out
    }

    private func norm(_ x: UnsafePointer<Float>, _ w: Tensor, rows: Int, dim: Int, into out: UnsafeMutablePointer<Float>,
                      rstd: UnsafeMutablePointer<Float>) {
        Kernels.rmsNorm(x, rows: rows, dim: dim, weight: w.pointer, weightOffset: config.recipe.normWeightOffset,
                        eps: Float(config.rmsNormEps), into: out, rstd: rstd)
    }

    private var activation: Kernels.GateActivation { config.recipe.activation == .silu ? .silu : .geluTanh }

    /// One decoder layer: attention then MLP, each as norm → sublayer (→ post-norm when sandwiched) → residual add.
    private func layerForward(_ l: Int, x: Tensor, out: Tensor, acts a: LayerActs, work w: LayerWork, st: ForwardState,
                              scratch: UnsafeMutablePointer<Float>) {
        let c = config, lw = weights.layers[l], T = st.ids.count, H = c.hiddenSize, I = c.intermediateSize
        norm(x.pointer, lw.inputNorm, rows: T, dim: H, into: w.xn1.pointer, rstd: a.rstd1.pointer)
        if let qPre = a.qPre, let kPre = a.kPre, let qn = lw.qNorm, let kn = lw.kNorm {
            TrainOps.linearForward(qPre.pointer, x: w.xn1.pointer, w: lw.qProj.pointer, bias: lw.qBias?.pointer,
                                   rows: T, inDim: H, outDim: c.qDim)
            TrainOps.linearForward(kPre.pointer, x: w.xn1.pointer, w: lw.kProj.pointer, bias: lw.kBias?.pointer,
                                   rows: T, inDim: H, outDim: c.kvDim)
            norm(qPre.pointer, qn, rows: T * c.numAttentionHeads, dim: c.headDim, into: a.q.pointer, rstd: a.rstdQ!.pointer)
            norm(kPre.pointer, kn, rows: T * c.numKeyValueHeads, dim: c.headDim, into: a.k.pointer, rstd: a.rstdK!.pointer)
        } else {
            TrainOps.linearForward(a.q.pointer, x: w.xn1.pointer, w: lw.qProj.pointer, bias: lw.qBias?.pointer,
                                   rows: T, inDim: H, outDim: c.qDim)
            TrainOps.linearForward(a.k.pointer, x: w.xn1.pointer, w: lw.kProj.pointer, bias: lw.kBias?.pointer,
                                   rows: T, inDim: H, outDim: c.kvDim)
        }
        TrainOps.linearForward(a.v.pointer, x: w.xn1.pointer, w: lw.vProj.pointer, bias: lw.vBias?.pointer,
                               rows: T, inDim: H, outDim: c.kvDim)
        let rope = ropes[layerRope[l]]
        st.positions.withUnsafeBufferPointer { pos in
            rope.apply(rows: T, a.q.pointer, stride: c.qDim, heads: c.numAttentionHeads, positions: pos.baseAddress!)
            rope.apply(rows: T, a.k.pointer, stride: c.kvDim, heads: c.numKeyValueHeads, positions: pos.baseAddress!)
        }
        TrainAttention.forward(out: a.att.pointer, lse: a.lse.pointer, q: a.q.pointer, k: a.k.pointer, v: a.v.pointer,
                               offsets: st.offsets, lengths: st.lengths, layout: layout(l), scratch: scratch)
        if let ao = a.attnOut, let post = lw.attnOutputNorm {
            // x2 = x + norm(att·Woᵀ); `out` holds the normed output until the MLP needs it.
            TrainOps.linearForward(ao.pointer, x: a.att.pointer, w: lw.oProj.pointer, bias: nil, rows: T, inDim: c.qDim, outDim: H)
            norm(ao.pointer, post, rows: T, dim: H, into: out.pointer, rstd: a.rstdAttnOut!.pointer)
            a.x2.pointer.update(from: x.pointer, count: T * H)
            add(a.x2.pointer, out.pointer, T * H)
        } else {
            TrainOps.linearForward(a.x2.pointer, x: a.att.pointer, w: lw.oProj.pointer, bias: nil, rows: T, inDim: c.qDim, outDim: H)
            add(a.x2.pointer, x.pointer, T * H)
        }
        norm(a.x2.pointer, lw.mlpNorm, rows: T, dim: H, into: w.xn2.pointer, rstd: a.rstd2.pointer)
        TrainOps.linearForward(a.gate.pointer, x: w.xn2.pointer, w: lw.gateProj.pointer, bias: nil, rows: T, inDim: H, outDim: I)
        TrainOps.linearForward(a.up.pointer, x: w.xn2.pointer, w: lw.upProj.pointer, bias: nil, rows: T, inDim: H, outDim: I)
        Kernels.gatedActivation(activation, gate: a.gate.pointer, up: a.up.pointer, into: w.h.pointer, rows: T, dim: I,
                                zeroColumns: st.ablation?.perLayer[l] ?? [])
        if let mo = a.mlpOut, let post = lw.mlpOutputNorm {
            TrainOps.linearForward(mo.pointer, x: w.h.pointer, w: lw.downProj.pointer, bias: nil, rows: T, inDim: I, outDim: H)
            norm(mo.pointer, post, rows: T, dim: H, into: out.pointer, rstd: a.rstdMlpOut!.pointer)
        } else {
            TrainOps.linearForward(out.pointer, x: w.h.pointer, w: lw.downProj.pointer, bias: nil, rows: T, inDim: I, outDim: H)
        }
        add(out.pointer, a.x2.pointer, T * H)
    }

    /// Rebuilds a kept layer's norm outputs and gated product into `w`, bit-identical to its forward.
    private func layerRebuild(_ l: Int, x: Tensor, acts a: LayerActs, work w: LayerWork, st: ForwardState) {
        let c = config, lw = weights.layers[l], T = st.ids.count, H = c.hiddenSize
        norm(x.pointer, lw.inputNorm, rows: T, dim: H, into: w.xn1.pointer, rstd: a.rstd1.pointer)
        norm(a.x2.pointer, lw.mlpNorm, rows: T, dim: H, into: w.xn2.pointer, rstd: a.rstd2.pointer)
        Kernels.gatedActivation(activation, gate: a.gate.pointer, up: a.up.pointer, into: w.h.pointer, rows: T,
                                dim: c.intermediateSize, zeroColumns: st.ablation?.perLayer[l] ?? [])
    }

    /// Query rows per causal attention block (tests shrink it so short fixtures span several blocks).
    var attentionBlock = 64

    private func layout(_ l: Int) -> TrainAttention.Layout {
        .init(heads: config.numAttentionHeads, kvHeads: config.numKeyValueHeads, headDim: config.headDim,
              scale: config.queryKeyScale, window: config.window(layer: l), block: attentionBlock)
    }

    /// x ← cap · tanh(x / cap), transformers' order of operations.
    static func softcap(_ x: UnsafeMutablePointer<Float>, _ n: Int, _ cap: Float) {
        Parallel.forRanges(n, minChunk: 1 << 14) { r in for i in r { x[i] = tanhf(x[i] / cap) * cap } }
    }

    private func add(_ y: UnsafeMutablePointer<Float>, _ x: UnsafePointer<Float>, _ n: Int) {
        Parallel.forRanges(n, minChunk: 1 << 14) { r in for i in r { y[i] += x[i] } }
    }

    // MARK: Backward

    /// Backpropagates dL/d(logp_seq) (one per sequence of the last forward) into `grads` (accumulating).
    public func backward(dLogProbs: [Float], into grads: ModelGradients) throws {
        precondition(grads.config == config, "gradients of a different model")
        try backwardPass(dLogProbs: dLogProbs, grads: grads, attribution: nil)
    }

    /// Attribution of every MLP neuron (the input a of `down_proj`) to f = Σ_s dLogProbs[s] · logp_s of the last
    /// forward: a · ∂f/∂a summed over every position of each sequence (prompt and completion), the first-order
    /// estimate of how much zeroing the neuron would lower f. Returned flat as [sequence][layer][neuron].
    /// Runs the backward pass without any weight gradient, so it costs about one forward more than the forward.
    public func neuronAttribution(dLogProbs: [Float]) throws -> [Double] {
        guard let st = state else { throw TrainingError.noForwardState }
        let per = config.numHiddenLayers * config.intermediateSize
        let out = UnsafeMutablePointer<Double>.allocate(capacity: max(1, st.sequenceCount * per))
        out.initialize(repeating: 0, count: max(1, st.sequenceCount * per))
        defer { out.deallocate() }
        try backwardPass(dLogProbs: dLogProbs, grads: nil, attribution: out)
        return Array(UnsafeBufferPointer(start: out, count: st.sequenceCount * per))
    }

    /// The backward pass. Without `grads` no weight gradient is formed (only what flows to lower layers);
    /// with `attribution` ([sequences × layers × intermediate]) each layer adds Σ_t a·∂f/∂a per sequence.
    private func backwardPass(dLogProbs: [Float], grads: ModelGradients?, attribution: UnsafeMutablePointer<Double>?) throws {
        guard let st = state, !st.layerInputs.isEmpty else { throw TrainingError.noForwardState }
        guard dLogProbs.count == st.sequenceCount else {
            throw TrainingError.invalidBatch(reason: "\(dLogProbs.count) gradients for \(st.sequenceCount) sequences")
        }
        let c = config, T = st.ids.count, H = c.hiddenSize, I = c.intermediateSize, offset = c.recipe.normWeightOffset
        let g = grads?.storage
        // Norm weight gradients are cheap ([H] per row); without `grads` they land in a scratch vector.
        let normScratch = Tensor(shape: [max(H, c.headDim)])
        func normBackward(dx: Tensor, dw: Tensor?, dout: Tensor, x: Tensor, w: Tensor, rstd: Tensor, rows: Int, dim: Int) {
            TrainOps.rmsnormBackward(dx: dx.pointer, dw: (dw ?? normScratch).pointer, dout: dout.pointer, x: x.pointer,
                                     w: w.pointer, weightOffset: offset, rstd: rstd.pointer, rows: rows, dim: dim)
        }
        let dxnf = Tensor(shape: [T, H])
        lmHeadBackward(st, dLogProbs: dLogProbs, dxnf: dxnf, dW: g.map { ($0.lmHead ?? $0.embedTokens).pointer })
        let dres = Tensor(shape: [T, H])
        normBackward(dx: dres, dw: g?.norm, dout: dxnf, x: st.layerInputs[c.numHiddenLayers], w: weights.norm,
                     rstd: st.rstdf, rows: T, dim: H)

        let maxLen = st.lengths.max() ?? 0
        let scratch = UnsafeMutablePointer<Float>.allocate(capacity: TrainAttention.scratchCount(maxLen: maxLen))
        defer { scratch.deallocate() }
        let reuse = st.recompute ? LayerActs(T: T, c: c) : nil
        let work = LayerWork(T: T, c: c)
        let dh = Tensor(shape: [T, I], zeroed: false)
        let dxn = Tensor(shape: [T, H], zeroed: false), datt = Tensor(shape: [T, c.qDim], zeroed: false)
        let dq = Tensor(shape: [T, c.qDim], zeroed: false)
        let dk = Tensor(shape: [T, c.kvDim]), dv = Tensor(shape: [T, c.kvDim])
        // QK-norm: gradients of the projections before their norm.
        let dqPre = c.recipe.qkNorm ? Tensor(shape: [T, c.qDim]) : nil, dkPre = c.recipe.qkNorm ? Tensor(shape: [T, c.kvDim]) : nil
        for l in stride(from: c.numHiddenLayers - 1, through: 0, by: -1) {
            let x = st.layerInputs[l]
            let a: LayerActs
            if let reuse {
                let tmpOut = st.layerInputs[l + 1]   // recompute writes the identical values back
                layerForward(l, x: x, out: tmpOut, acts: reuse, work: work, st: st, scratch: scratch)
                a = reuse
            } else {
                a = st.layerActs[l]
                layerRebuild(l, x: x, acts: a, work: work, st: st)
            }
            let lw = weights.layers[l], lg = g?.layers[l]
            let ablated = st.ablation?.perLayer[l] ?? []
            // MLP: out = x2 + [norm](h·Wdᵀ). With a post-norm its input gradient goes through dxn first.
            var dDown = dres
            if let mo = a.mlpOut, let post = lw.mlpOutputNorm {
                dxn.zero()
                normBackward(dx: dxn, dw: lg?.mlpOutputNorm, dout: dres, x: mo, w: post, rstd: a.rstdMlpOut!, rows: T, dim: H)
                dDown = dxn
            }
            // h is dead after the down projection's weight gradient, so dgate reuses it.
            let dgate = work.h
            TrainOps.linearBackward(dx: dh.pointer, accumulateDx: false, dw: lg?.downProj.pointer, db: nil, dy: dDown.pointer,
                                    x: work.h.pointer, w: lw.downProj.pointer, rows: T, inDim: I, outDim: H)
            if let attribution {
                Self.accumulateAttribution(attribution, layer: l, h: work.h.pointer, dh: dh.pointer, st: st,
                                           layers: c.numHiddenLayers, width: I)
            }
            TrainOps.gatedActivationBackward(activation, dgate: dgate.pointer, dup: dh.pointer, dh: dh.pointer,
                                             gate: a.gate.pointer, up: a.up.pointer, rows: T, dim: I, ablated: ablated)
            TrainOps.linearBackward(dx: dxn.pointer, accumulateDx: false, dw: lg?.gateProj.pointer, db: nil, dy: dgate.pointer,
                                    x: work.xn2.pointer, w: lw.gateProj.pointer, rows: T, inDim: H, outDim: I)
            TrainOps.linearBackward(dx: dxn.pointer, accumulateDx: true, dw: lg?.upProj.pointer, db: nil, dy: dh.pointer,
                                    x: work.xn2.pointer, w: lw.upProj.pointer, rows: T, inDim: H, outDim: I)
            normBackward(dx: dres, dw: lg?.mlpNorm, dout: dxn, x: a.x2, w: lw.mlpNorm, rstd: a.rstd2, rows: T, dim: H)
            // Attention: x2 = x + [norm](att·Woᵀ)
            var dO = dres
            if let ao = a.attnOut, let post = lw.attnOutputNorm {
                dxn.zero()
                normBackward(dx: dxn, dw: lg?.attnOutputNorm, dout: dres, x: ao, w: post, rstd: a.rstdAttnOut!, rows: T, dim: H)
                dO = dxn
            }
            TrainOps.linearBackward(dx: datt.pointer, accumulateDx: false, dw: lg?.oProj.pointer, db: nil, dy: dO.pointer,
                                    x: a.att.pointer, w: lw.oProj.pointer, rows: T, inDim: c.qDim, outDim: H)
            dk.zero(); dv.zero()
            TrainAttention.backward(dq: dq.pointer, dk: dk.pointer, dv: dv.pointer, dout: datt.pointer, q: a.q.pointer,
                                    k: a.k.pointer, v: a.v.pointer, lse: a.lse.pointer, offsets: st.offsets,
                                    lengths: st.lengths, layout: layout(l), scratch: scratch)
            let rope = ropes[layerRope[l]]
            st.positions.withUnsafeBufferPointer { pos in
                rope.apply(rows: T, dq.pointer, stride: c.qDim, heads: c.numAttentionHeads, positions: pos.baseAddress!, inverse: true)
                rope.apply(rows: T, dk.pointer, stride: c.kvDim, heads: c.numKeyValueHeads, positions: pos.baseAddress!, inverse: true)
            }
            var dQ = dq, dK = dk
            if let dqPre, let dkPre, let qPre = a.qPre, let kPre = a.kPre, let qn = lw.qNorm, let kn = lw.kNorm {
                dqPre.zero(); dkPre.zero()
                normBackward(dx: dqPre, dw: lg?.qNorm, dout: dq, x: qPre, w: qn, rstd: a.rstdQ!, rows: T * c.numAttentionHeads, dim: c.headDim)
                normBackward(dx: dkPre, dw: lg?.kNorm, dout: dk, x: kPre, w: kn, rstd: a.rstdK!, rows: T * c.numKeyValueHeads, dim: c.headDim)
                dQ = dqPre; dK = dkPre
            }
            TrainOps.linearBackward(dx: dxn.pointer, accumulateDx: false, dw: lg?.qProj.pointer, db: lg?.qBias?.pointer,
                                    dy: dQ.pointer, x: work.xn1.pointer, w: lw.qProj.pointer, rows: T, inDim: H, outDim: c.qDim)
            TrainOps.linearBackward(dx: dxn.pointer, accumulateDx: true, dw: lg?.kProj.pointer, db: lg?.kBias?.pointer,
                                    dy: dK.pointer, x: work.xn1.pointer, w: lw.kProj.pointer, rows: T, inDim: H, outDim: c.kvDim)
            TrainOps.linearBackward(dx: dxn.pointer, accumulateDx: true, dw: lg?.vProj.pointer, db: lg?.vBias?.pointer,
                                    dy: dv.pointer, x: work.xn1.pointer, w: lw.vProj.pointer, rows: T, inDim: H, outDim: c.kvDim)
            normBackward(dx: dres, dw: lg?.inputNorm, dout: dxn, x: x, w: lw.inputNorm, rstd: a.rstd1, rows: T, dim: H)
        }
        if let g {
            TrainOps.embeddingBackward(g.embedTokens.pointer, ids: st.ids, dout: dres.pointer, hidden: H,
                                       scale: c.embeddingScale.map { Float($0) })
        }
    }

    /// attribution[s][layer][j] += Σ_{t ∈ sequence s} h[t, j] · dh[t, j]. Workers split the neurons, so no two
    /// threads write one cell; rows stream through in order, and the products are summed in Double.
    private static func accumulateAttribution(_ out: UnsafeMutablePointer<Double>, layer: Int, h: UnsafePointer<Float>,
                                              dh: UnsafePointer<Float>, st: ForwardState, layers: Int, width I: Int) {
        Parallel.forRanges(I, minChunk: 64) { jr in
            for s in 0..<st.sequenceCount {
                let dst = out + (s * layers + layer) * I
                let lo = st.offsets[s], hi = lo + st.lengths[s]
                for t in lo..<hi {
                    let hr = h + t * I, gr = dh + t * I
                    for j in jr { dst[j] += Double(hr[j] * gr[j]) }
                }
            }
        }
    }

    /// LM head: dlogits = g_s · (onehot − softmax) per completion row → dxnf rows (+=), dW (+=).
    /// With kept probabilities all rows go through one pair of matmuls (and the kept buffer becomes dlogits,
    /// so a second backward of the same forward recomputes); otherwise the logits are recomputed chunk by chunk.
    private func lmHeadBackward(_ st: ForwardState, dLogProbs: [Float], dxnf: Tensor, dW: UnsafeMutablePointer<Float>?) {
        let H = config.hiddenSize, V = config.vocabSize, R = st.rows.count
        let softcap = config.finalLogitSoftcap.map { Float($0) }
        let probs = st.probs
        st.probs = nil
        let chunk = probs != nil ? max(1, R) : max(1, min(R, lmHeadChunkElements / V))
        let buf = UnsafeMutablePointer<Float>.allocate(capacity: max(1, chunk * H))
        let dbuf = UnsafeMutablePointer<Float>.allocate(capacity: max(1, chunk * H))
        let scratchLogits: UnsafeMutablePointer<Float>? = probs == nil ? .allocate(capacity: max(1, chunk * V)) : nil
        defer { buf.deallocate(); dbuf.deallocate(); scratchLogits?.deallocate() }
        let W = weights.outputWeight.pointer
        var r0 = 0
        while r0 < R {
            let n = min(chunk, R - r0)
            let logits = probs.map { $0.pointer + r0 * V } ?? scratchLogits!
            for i in 0..<n { (buf + i * H).update(from: st.xnf.pointer + st.rows[r0 + i] * H, count: H) }
            if probs == nil { BLAS.linear(buf, count: n, inFeatures: H, weight: W, outFeatures: V, into: logits) }
            let recomputed = probs == nil
            st.rowLse.withUnsafeBufferPointer { lse in
                st.rowInvSum.withUnsafeBufferPointer { inv in
                    st.targets.withUnsafeBufferPointer { tg in
                        st.rowSeq.withUnsafeBufferPointer { rs in
                            dLogProbs.withUnsafeBufferPointer { gs in
                                Parallel.forRanges(n) { rr in
                                    for i in rr {
                                        let row = logits + i * V, r = r0 + i, gi = gs[rs[r]]
                                        if let cap = softcap {
                                            // c = cap·tanh(z/cap): dz = dc · (1 − (c/cap)²), dc = g·(onehot − e^(c − lse)).
                                            let target = Int(tg[r])
                                            for j in 0..<V {
                                                let cj = tanhf(row[j] / cap) * cap, t = cj / cap
                                                var d = -gi * Kernels.exp(cj - lse[r])
                                                if j == target { d += gi }
                                                row[j] = d * (1 - t * t)
                                            }
                                            continue
                                        }
                                        if recomputed {
                                            Vec.expShift(row, V, lse[r])
                                            Vec.scale(row, V, -gi)
                                        } else {
                                            Vec.scale(row, V, -gi * inv[r])
                                        }
                                        row[Int(tg[r])] += gi
                                    }
                                }
                            }
                        }
                    }
                }
            }
            TrainOps.linearBackward(dx: dbuf, accumulateDx: false, dw: dW, db: nil, dy: logits, x: buf, w: W,
                                    rows: n, inDim: H, outDim: V)
            for i in 0..<n {
                let d = dxnf.pointer + st.rows[r0 + i] * H, s = dbuf + i * H
                for j in 0..<H { d[j] += s[j] }
            }
            r0 += n
        }
    }
}
