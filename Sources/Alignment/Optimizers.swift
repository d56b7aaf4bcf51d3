import Foundation
import Tensors
import Transformer

/// Which parameter elements an optimizer may touch.
/// `.freeze`: the neurons' slices (gate_proj row j, up_proj row j, down_proj column j of layer l) never change.
/// `.trainOnly` (SN-Tune): only those slices change; every other element stays bit-identical.
public enum MaskMode: String, Codable, Sendable { case freeze, trainOnly }

/// Frozen elements of one tensor: (r, c) is frozen iff `all` || frozenRows[r] || frozenCols[c].
public struct TensorMask: Sendable, Equatable {
    public var all = false
    public var frozenRows: [Bool]? = nil
    public var frozenCols: [Bool]? = nil

    @inline(__always) func frozen(_ r: Int, _ c: Int) -> Bool {
        all || (frozenRows?[r] ?? false) || (frozenCols?[c] ?? false)
    }
}

/// Per-parameter masks aligned with `ModelWeights.namedParameters` (nil = fully trainable).
public struct ParameterMask: Sendable {
    public let masks: [TensorMask?]

    public init(config c: ModelConfig, neurons: NeuronSet, mode: MaskMode) {
        // The parameter list of a miniature model with the same recipe: same names and order, no real allocation.
        var miniature = c
        miniature.vocabSize = 1; miniature.hiddenSize = 2; miniature.intermediateSize = 1
        miniature.numAttentionHeads = 1; miniature.numKeyValueHeads = 1; miniature.headDim = 2
        let probe = ModelWeights(config: miniature)
        let names = c.architecture.tensorNames
        var out: [TensorMask?] = []
        for (name, _) in probe.namedParameters {
            var layer: Int?
            let parts = name.split(separator: ".")
            if parts.count > 3, parts[0] == "model", parts[1] == "layers", let l = Int(parts[2]) { layer = l }
            let role = names.role(ofHF: name)
            var inSet = [Bool](repeating: false, count: c.intermediateSize)
            if let layer, layer < neurons.layerCount { for j in neurons.perLayer[layer] where j < c.intermediateSize { inSet[j] = true } }
            // Neuron j is row j of gate/up and column j of down.
            let isNeuronTensor = role == .gateProj || role == .upProj || role == .downProj
            switch mode {
            case .freeze:
                if isNeuronTensor, inSet.contains(true) {
                    out.append(role == .downProj ? TensorMask(frozenCols: inSet) : TensorMask(frozenRows: inSet))
                } else { out.append(nil) }
            case .trainOnly:
                if isNeuronTensor {
                    let inv = inSet.map { !$0 }
                    out.append(role == .downProj ? TensorMask(frozenCols: inv) : TensorMask(frozenRows: inv))
                } else { out.append(TensorMask(all: true)) }
            }
        }
        masks = out
    }

    public init(masks: [TensorMask?]) { self.masks = masks }

    /// Zeroes the gradient of every frozen element.
    public func apply(to grads: ModelGradients) {
        for ((_, t), m) in zip(grads.namedParameters, masks) {
            guard let m else { continue }
            forEachFrozen(t, m) { $0 = 0 }
        }
    }

    func forEachFrozen(_ t: Tensor, _ m: TensorMask, _ body: (inout Float) -> Void) {
        let cols = t.shape.count == 2 ? t.shape[1] : t.count, rows = t.count / max(1, cols)
        for r in 0..<rows { for c in 0..<cols where m.frozen(r, c) { body(&t.pointer[r * cols + c]) } }
    }
}

/// Gradient clipping like torch.nn.utils.clip_grad_norm_: total 2-norm over all gradients; when
/// max/(norm+1e-6) < 1 every gradient is scaled by it. Returns the norm before clipping.
@discardableResult
public func clipGradNorm(_ grads: ModelGradients, maxNorm: Double) -> Double {
    let norm = grads.globalNorm()
    let coef = maxNorm / (norm + 1e-6)
    if coef < 1 { grads.scale(by: Float(coef)) }
    return norm
}

public enum OptimizerKind: String, Codable, Sendable, CaseIterable { case adamw, sgd }

/// AdamW / SGD with PyTorch semantics over `ModelWeights`, honouring a `ParameterMask`: a frozen element gets
/// no gradient, no weight decay and no moment update, so it stays bit-identical. AdamW's moments are f32
/// (PyTorch's AdamW, bit for bit) or bf16 with stochastic rounding (`MomentFormat`), half the state memory.
public final class Optimizer: @unchecked Sendable {
    public let kind: OptimizerKind
    public var beta1: Double, beta2: Double, eps: Double, weightDecay: Double
    /// HF Trainer leaves biases and norm weights out of weight decay; set true to decay everything.
    public var decayNormsAndBiases = false
    public private(set) var stepCount = 0
    public let mask: ParameterMask?
    public let momentFormat: MomentFormat
    /// Seed of the stochastic rounding of bf16 moments (unused for f32).
    public let roundingSeed: UInt64
    /// (m, v) per parameter in `namedParameters` order; nil for SGD and for fully frozen tensors.
    let moments: [(m: MomentBuffer, v: MomentBuffer)?]

    public init(kind: OptimizerKind, config: ModelConfig, mask: ParameterMask?, weightDecay: Double = 0,
                beta1: Double = 0.9, beta2: Double = 0.999, eps: Double = 1e-8,
                momentFormat: MomentFormat = .f32, roundingSeed: UInt64 = 0) {
        self.kind = kind; self.mask = mask; self.weightDecay = weightDecay
        self.beta1 = beta1; self.beta2 = beta2; self.eps = eps
        self.momentFormat = momentFormat; self.roundingSeed = roundingSeed
        let shapes = ModelWeights.parameterShapes(config)
        if kind == .adamw {
            // Checkpoints name every parameter's moments, so frozen tensors keep (zero) state too: a checkpoint of
            // a SN-Tune run then loads into any trainer of the same model.
            moments = shapes.map { (MomentBuffer(shape: $0.shape, format: momentFormat), MomentBuffer(shape: $0.shape, format: momentFormat)) }
        } else {
            moments = shapes.map { _ in nil }
        }
    }

    /// Bytes of optimizer state this optimizer holds.
    public var stateBytes: Int { moments.reduce(0) { $0 + ($1.map { $0.m.byteCount + $0.v.byteCount } ?? 0) } }

    /// Moment state for checkpoints, named "adam.m/<param>", "adam.v/<param>", in its own format.
    public func stateEntries(parameterNames: [String]) -> [CheckpointTensor] {
        var ms: [CheckpointTensor] = [], vs: [CheckpointTensor] = []
        for (name, pair) in zip(parameterNames, moments) {
            guard let pair else { continue }
            ms.append(CheckpointTensor(name: "adam.m/\(name)", moment: pair.m))
            vs.append(CheckpointTensor(name: "adam.v/\(name)", moment: pair.v))
        }
        return ms + vs
    }

    /// One moment of one parameter as f32 values (tests, inspection).
    public func moment(_ which: Int, parameter index: Int) -> [Float]? {
        guard let pair = moments[index] else { return nil }
        let b = which == 0 ? pair.m : pair.v
        return (0..<b.count).map { b[$0] }
    }

    public func restore(stepCount: Int) { self.stepCount = stepCount }

    /// One update with learning rate `lr`. Gradients of frozen elements are ignored (and not read).
    public func step(_ weights: ModelWeights, _ grads: ModelGradients, lr: Double) {
        stepCount += 1
        let params = weights.namedParameters, gs = grads.namedParameters
        precondition(params.count == moments.count, "optimizer built for another model")
        let bc1 = 1 - pow(beta1, Double(stepCount)), bc2 = 1 - pow(beta2, Double(stepCount))
        for i in 0..<params.count {
            let (name, p) = params[i]
            let mk = mask?.masks[i]
            if mk?.all == true { continue }
            let noDecay = !decayNormsAndBiases && (name.contains("norm") || name.hasSuffix(".bias"))
            let wd = noDecay ? 0 : weightDecay
            let cols = p.shape.count == 2 ? p.shape[1] : p.count, rows = p.count / max(1, cols)
            let P = p.pointer, G = gs[i].1.pointer
            switch kind {
            case .adamw:
                let pair = moments[i]!
                let k = AdamWConstants(decay: Float(1 - lr * wd), applyDecay: wd != 0, w1: Float(1 - beta1), b2: Float(beta2),
                                       w2: Float(1 - beta2), stepSize: Float(lr / bc1), bc2s: Float(bc2.squareRoot()),
                                       eps: Float(eps))
                switch momentFormat {
                case .f32:
                    let M = pair.m.floats, Vv = pair.v.floats
                    Self.forEachTrainableSpan(rows: rows, cols: cols, mask: mk) { j, n in
                        Self.adamw(P + j, G + j, M + j, Vv + j, n, k)
                    }
                case .bf16:
                    let M = pair.m.halves, Vv = pair.v.halves
                    let keys = (m: RoundingNoise.key(seed: roundingSeed, step: stepCount, tensor: i, moment: 0),
                                v: RoundingNoise.key(seed: roundingSeed, step: stepCount, tensor: i, moment: 1))
                    Self.forEachTrainableSpan(rows: rows, cols: cols, mask: mk) { j, n in
                        Self.adamwBF16(P, G, M, Vv, start: j, count: n, k, keyM: keys.m, keyV: keys.v)
                    }
                }
            case .sgd:
                let lrf = Float(lr), wdf = Float(wd)
                Self.forEachTrainableSpan(rows: rows, cols: cols, mask: mk) { j0, n in
                    for j in j0..<(j0 + n) {
                        let d = wdf != 0 ? G[j] + wdf * P[j] : G[j]
                        P[j] = P[j] - lrf * d
                    }
                }
            }
        }
    }

    /// Calls `body(start, count)` for each run of consecutive trainable elements of a [rows × cols] tensor,
    /// rows spread over the workers (a fully trainable 1-D tensor is split into column ranges instead).
    static func forEachTrainableSpan(rows: Int, cols: Int, mask: TensorMask?, _ body: (Int, Int) -> Void) {
        guard let mask else {
            Parallel.forRanges(rows * cols, minChunk: 1 << 14) { r in body(r.lowerBound, r.count) }
            return
        }
        if mask.all { return }
        Parallel.forRanges(rows, minChunk: 16) { rr in
            for r in rr {
                if mask.frozenRows?[r] == true { continue }
                guard let fc = mask.frozenCols else { body(r * cols, cols); continue }
                var c = 0
                while c < cols {
                    while c < cols && fc[c] { c += 1 }
                    let lo = c
                    while c < cols && !fc[c] { c += 1 }
                    if c > lo { body(r * cols + lo, c - lo) }
                }
            }
        }
    }

    struct AdamWConstants {
        var decay: Float, applyDecay: Bool, w1: Float, b2: Float, w2: Float, stepSize: Float, bc2s: Float, eps: Float
    }

    /// PyTorch's AdamW update over n consecutive elements; lanes do exactly the scalar operations, in the same
    /// order, so both paths round identically.
    @inline(__always)
    static func adamw(_ P: UnsafeMutablePointer<Float>, _ G: UnsafePointer<Float>, _ M: UnsafeMutablePointer<Float>,
                      _ Vv: UnsafeMutablePointer<Float>, _ n: Int, _ k: AdamWConstants) {
        typealias V = SIMD16<Float>
        @inline(__always) func ld(_ p: UnsafePointer<Float>) -> V { UnsafeRawPointer(p).loadUnaligned(as: V.self) }
        @inline(__always) func st(_ v: V, _ p: UnsafeMutablePointer<Float>) { UnsafeMutableRawPointer(p).storeBytes(of: v, as: V.self) }
        let decay = V(repeating: k.decay), w1 = V(repeating: k.w1), b2 = V(repeating: k.b2), w2 = V(repeating: k.w2)
        let stepSize = V(repeating: k.stepSize), bc2s = V(repeating: k.bc2s), e = V(repeating: k.eps)
        var j = 0
        while j + 16 <= n {
            let g = ld(G + j), m0 = ld(M + j)
            var x = ld(P + j)
            if k.applyDecay { x *= decay }
            let mj = m0 + w1 * (g - m0)
            let vj = ld(Vv + j) * b2 + w2 * g * g
            st(mj, M + j); st(vj, Vv + j)
            let denom = vj.squareRoot() / bc2s + e
            st(x - stepSize * (mj / denom), P + j)
            j += 16
        }
        while j < n {
            let g = G[j]
            var x = P[j]
            if k.applyDecay { x *= k.decay }
            let mj = M[j] + k.w1 * (g - M[j])
            let vj = Vv[j] * k.b2 + k.w2 * g * g
            M[j] = mj; Vv[j] = vj
            let denom = vj.squareRoot() / k.bc2s + k.eps
            P[j] = x - k.stepSize * (mj / denom)
            j += 1
        }
    }

    /// The same update with bf16 moments: each moment is widened to f32 (exactly), updated by the f32
    /// formula, stored back with stochastic rounding, and the weight is updated with the *stored* (rounded)
    /// moments, so the state a checkpoint holds is the state the step used. Elements [start, start + n) of the
    /// tensor; the rounding draw of element j depends only on (key, j).
    static func adamwBF16(_ P: UnsafeMutablePointer<Float>, _ G: UnsafePointer<Float>, _ M: UnsafeMutablePointer<UInt16>,
                          _ Vv: UnsafeMutablePointer<UInt16>, start: Int, count n: Int, _ k: AdamWConstants,
                          keyM: UInt32, keyV: UInt32) {
        typealias V = SIMD16<Float>
        typealias U = SIMD16<UInt32>
        @inline(__always) func ldF(_ p: UnsafePointer<Float>) -> V { UnsafeRawPointer(p).loadUnaligned(as: V.self) }
        @inline(__always) func ldH(_ p: UnsafePointer<UInt16>) -> V {
            let h = UnsafeRawPointer(p).loadUnaligned(as: SIMD16<UInt16>.self)
            return unsafeBitCast(U(truncatingIfNeeded: h) &<< 16, to: V.self)
        }
        @inline(__always) func mix(_ x0: U) -> U {
            var x = x0
            x ^= x &>> 16; x &*= 0x7FEB_352D
            x ^= x &>> 15; x &*= 0x846C_A68B
            x ^= x &>> 16
            return x
        }
        /// Stochastic rounding of 16 lanes; lanes whose value or result is not finite go through the scalar rule.
        @inline(__always) func round(_ v: V, index: Int, key: UInt32, into out: UnsafeMutablePointer<UInt16>) {
            let lane = U(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15)
            let idx = U(repeating: UInt32(truncatingIfNeeded: index)) &+ lane
            let hi = U(repeating: UInt32(truncatingIfNeeded: index >> 32))
            let r = mix(mix(idx ^ U(repeating: key)) &+ hi) &>> 16
            let bits = unsafeBitCast(v, to: U.self)
            let sum = bits &+ r
            let expMask = U(repeating: 0x7F80_0000)
            if any((bits & expMask) .== expMask) || any((sum & expMask) .== expMask) {
                for t in 0..<16 {
                    out[t] = BFloat16.stochasticRound(v[t], random: RoundingNoise.bits(index: index + t, key: key))
                }
                return
            }
            UnsafeMutableRawPointer(out).storeBytes(of: SIMD16<UInt16>(truncatingIfNeeded: sum &>> 16), as: SIMD16<UInt16>.self)
        }
        let decay = V(repeating: k.decay), w1 = V(repeating: k.w1), b2 = V(repeating: k.b2), w2 = V(repeating: k.w2)
        let stepSize = V(repeating: k.stepSize), bc2s = V(repeating: k.bc2s), e = V(repeating: k.eps)
        var j = start
        let end = start + n
        while j + 16 <= end {
            let g = ldF(G + j), m0 = ldH(M + j)
            var x = ldF(P + j)
            if k.applyDecay { x *= decay }
            round(m0 + w1 * (g - m0), index: j, key: keyM, into: M + j)
            round(ldH(Vv + j) * b2 + w2 * g * g, index: j, key: keyV, into: Vv + j)
            let mj = ldH(M + j), vj = ldH(Vv + j)
            let denom = vj.squareRoot() / bc2s + e
            UnsafeMutableRawPointer(P + j).storeBytes(of: x - stepSize * (mj / denom), as: V.self)
            j += 16
        }
        while j < end {
            let g = G[j]
            var x = P[j]
            if k.applyDecay { x *= k.decay }
            let m0 = BFloat16.float(M[j])
            M[j] = BFloat16.stochasticRound(m0 + k.w1 * (g - m0), random: RoundingNoise.bits(index: j, key: keyM))
            Vv[j] = BFloat16.stochasticRound(BFloat16.float(Vv[j]) * k.b2 + k.w2 * g * g, random: RoundingNoise.bits(index: j, key: keyV))
            let mj = BFloat16.float(M[j]), vj = BFloat16.float(Vv[j])
            let denom = vj.squareRoot() / k.bc2s + k.eps
            P[j] = x - k.stepSize * (mj / denom)
            j += 1
        }
    }
}

public enum LRScheduleKind: String, Codable, Sendable, CaseIterable { case constant, linear, cosine }

/// Learning-rate multipliers of transformers' get_{constant,linear,cosine}_schedule_with_warmup
/// (cosine with num_cycles 0.5). `step` is the number of scheduler steps taken so far: the k-th
/// optimizer update (0-based) uses multiplier(k).
public func lrMultiplier(_ kind: LRScheduleKind, step: Int, warmup: Int, total: Int) -> Double {
    if step < warmup { return Double(step) / Double(max(1, warmup)) }
    switch kind {
    case .constant: return 1
    case .linear: return max(0, Double(total - step) / Double(max(1, total - warmup)))
    case .cosine:
        let progress = Double(step - warmup) / Double(max(1, total - warmup))
        return max(0, 0.5 * (1 + cos(Double.pi * 0.5 * 2 * progress)))
    }
}
