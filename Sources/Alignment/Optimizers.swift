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

/// Per-parameter masks aligned with `LlamaWeights.namedParameters` (nil = fully trainable).
public struct ParameterMask: Sendable {
    public let masks: [TensorMask?]

    public init(config c: LlamaConfig, neurons: NeuronSet, mode: MaskMode) {
        let probe = LlamaWeights(config: LlamaConfig(modelType: c.modelType, vocabSize: 1, hiddenSize: 2, intermediateSize: 1,
                                                     numHiddenLayers: c.numHiddenLayers, numAttentionHeads: 1,
                                                     numKeyValueHeads: 1, headDim: 2, tieWordEmbeddings: c.tieWordEmbeddings,
                                                     attentionBias: c.attentionBias))
        var out: [TensorMask?] = []
        for (name, _) in probe.namedParameters {
            var layer: Int?, kind = ""
            let parts = name.split(separator: ".")
            if parts.count > 3, parts[0] == "model", parts[1] == "layers", let l = Int(parts[2]) {
                layer = l; kind = parts[3..<parts.count - 1].joined(separator: ".")
            }
            var inSet = [Bool](repeating: false, count: c.intermediateSize)
            if let layer, layer < neurons.layerCount { for j in neurons.perLayer[layer] where j < c.intermediateSize { inSet[j] = true } }
            let isNeuronTensor = kind == "mlp.gate_proj" || kind == "mlp.up_proj" || kind == "mlp.down_proj"
            switch mode {
            case .freeze:
                if isNeuronTensor, inSet.contains(true) {
                    out.append(kind == "mlp.down_proj" ? TensorMask(frozenCols: inSet) : TensorMask(frozenRows: inSet))
                } else { out.append(nil) }
            case .trainOnly:
                if isNeuronTensor {
                    let inv = inSet.map { !$0 }
                    out.append(kind == "mlp.down_proj" ? TensorMask(frozenCols: inv) : TensorMask(frozenRows: inv))
                } else { out.append(TensorMask(all: true)) }
            }
        }
        masks = out
    }

    public init(masks: [TensorMask?]) { self.masks = masks }

    /// Zeroes the gradient of every frozen element.
    public func apply(to grads: LlamaGradients) {
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
public func clipGradNorm(_ grads: LlamaGradients, maxNorm: Double) -> Double {
    let norm = grads.globalNorm()
    let coef = maxNorm / (norm + 1e-6)
    if coef < 1 { grads.scale(by: Float(coef)) }
    return norm
}

public enum OptimizerKind: String, Codable, Sendable { case adamw, sgd }

/// AdamW / SGD with PyTorch semantics over `LlamaWeights`, honouring a `ParameterMask`: a frozen element gets
/// no gradient, no weight decay and no moment update, so it stays bit-identical.
public final class Optimizer: @unchecked Sendable {
    public let kind: OptimizerKind
    public var beta1: Double, beta2: Double, eps: Double, weightDecay: Double
    /// HF Trainer leaves biases and norm weights out of weight decay; set true to decay everything.
    public var decayNormsAndBiases = false
    public private(set) var stepCount = 0
    public let mask: ParameterMask?
    let m: LlamaGradients?, v: LlamaGradients?

    public init(kind: OptimizerKind, config: LlamaConfig, mask: ParameterMask?, weightDecay: Double = 0,
                beta1: Double = 0.9, beta2: Double = 0.999, eps: Double = 1e-8) {
        self.kind = kind; self.mask = mask; self.weightDecay = weightDecay
        self.beta1 = beta1; self.beta2 = beta2; self.eps = eps
        m = kind == .adamw ? LlamaGradients(config: config) : nil
        v = kind == .adamw ? LlamaGradients(config: config) : nil
    }

    /// Moment tensors for checkpoints, named "adam.m/<param>", "adam.v/<param>".
    public var stateTensors: [(String, Tensor)] {
        guard let m, let v else { return [] }
        return m.namedParameters.map { ("adam.m/\($0.0)", $0.1) } + v.namedParameters.map { ("adam.v/\($0.0)", $0.1) }
    }

    public func restore(stepCount: Int) { self.stepCount = stepCount }

    /// One update with learning rate `lr`. Gradients of frozen elements are ignored (and not read).
    public func step(_ weights: LlamaWeights, _ grads: LlamaGradients, lr: Double) {
        stepCount += 1
        let params = weights.namedParameters, gs = grads.namedParameters
        let ms = m?.namedParameters, vs = v?.namedParameters
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
                let M = ms![i].1.pointer, Vv = vs![i].1.pointer
                let decay = Float(1 - lr * wd), w1 = Float(1 - beta1), b2 = Float(beta2), w2 = Float(1 - beta2)
                let stepSize = Float(lr / bc1), bc2s = Float(bc2.squareRoot()), e = Float(eps)
                Parallel.forRanges(rows, minChunk: 16) { rr in
                    for r in rr {
                        for c in 0..<cols {
                            if let mk, mk.frozen(r, c) { continue }
                            let j = r * cols + c, g = G[j]
                            var x = P[j]
                            if wd != 0 { x *= decay }
                            let mj = M[j] + w1 * (g - M[j])
                            let vj = Vv[j] * b2 + w2 * g * g
                            M[j] = mj; Vv[j] = vj
                            let denom = vj.squareRoot() / bc2s + e
                            P[j] = x - stepSize * (mj / denom)
                        }
                    }
                }
            case .sgd:
                let lrf = Float(lr), wdf = Float(wd)
                Parallel.forRanges(rows, minChunk: 16) { rr in
                    for r in rr {
                        for c in 0..<cols {
                            if let mk, mk.frozen(r, c) { continue }
                            let j = r * cols + c
                            let d = wdf != 0 ? G[j] + wdf * P[j] : G[j]
                            P[j] = P[j] - lrf * d
                        }
                    }
                }
            }
        }
    }
}

public enum LRScheduleKind: String, Codable, Sendable { case constant, linear, cosine }

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
