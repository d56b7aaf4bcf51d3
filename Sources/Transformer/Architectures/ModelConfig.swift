import Foundation

/// The resolved settings of one decoder-only model: sizes, and the layer recipe its architecture description
/// (`Architectures/<Family>.swift`) chose. Inference, training, loading, export and the FLOP count read only this;
/// no code outside the architecture files asks which family a model is.
public struct ModelConfig: Codable, Sendable, Equatable {
    /// Hugging Face's `model_type` ("llama", "mistral", "qwen2", "gemma3_text"); it selects the description.
    public var modelType: String
    public var vocabSize: Int
    public var hiddenSize: Int
    public var intermediateSize: Int
    public var numHiddenLayers: Int
    public var numAttentionHeads: Int
    public var numKeyValueHeads: Int
    public var headDim: Int
    public var rmsNormEps: Double
    /// RoPE of full-attention layers (and of every layer unless `slidingRope` says otherwise).
    public var ropeTheta: Double
    public var ropeScaling: RopeScaling?
    public var maxPositionEmbeddings: Int
    public var tieWordEmbeddings: Bool
    /// q/k/v biases (Qwen2 has them; o_proj never does there).
    public var attentionBias: Bool
    public var bosTokenId: Int?
    public var eosTokenIds: [Int]
    public var recipe: LayerRecipe
    /// Per layer: full causal attention, or a sliding window of `slidingWindow` keys (the query's own included).
    public var layerTypes: [AttentionKind]
    public var slidingWindow: Int?
    /// RoPE of sliding-window layers when it differs from the full layers' (Gemma 3's local base 10 000).
    public var slidingRope: RopeSettings?
    /// Multiplier of q·k; nil means 1/√head_dim (Gemma's is query_pre_attn_scalar^-½).
    public var attentionScale: Double?
    /// Multiplier of the embedding rows on the way in (Gemma: √hidden); nil means none.
    public var embeddingScale: Double?
    /// logits ← cap · tanh(logits / cap) on the LM head output, when set (Gemma 2).
    public var finalLogitSoftcap: Double?
    /// The same on attention scores before the softmax, when set (Gemma 2).
    public var attentionLogitSoftcap: Double?

    public struct RopeScaling: Codable, Sendable, Equatable {
        /// "llama3" (wavelength-banded) or "linear" (positions divided by `factor`).
        public var ropeType: String
        public var factor: Double
        public var lowFreqFactor: Double
        public var highFreqFactor: Double
        public var originalMaxPositionEmbeddings: Int

        public init(ropeType: String, factor: Double, lowFreqFactor: Double = 1, highFreqFactor: Double = 1,
                    originalMaxPositionEmbeddings: Int = 0) {
            self.ropeType = ropeType; self.factor = factor; self.lowFreqFactor = lowFreqFactor
            self.highFreqFactor = highFreqFactor; self.originalMaxPositionEmbeddings = originalMaxPositionEmbeddings
        }
    }

    public struct RopeSettings: Codable, Sendable, Equatable {
        public var theta: Double
        public var scaling: RopeScaling?
        public init(theta: Double, scaling: RopeScaling? = nil) { self.theta = theta; self.scaling = scaling }
    }

    public init(modelType: String = "llama", vocabSize: Int, hiddenSize: Int, intermediateSize: Int,
                numHiddenLayers: Int, numAttentionHeads: Int, numKeyValueHeads: Int, headDim: Int? = nil,
                rmsNormEps: Double = 1e-5, ropeTheta: Double = 10000, ropeScaling: RopeScaling? = nil,
                maxPositionEmbeddings: Int = 2048, tieWordEmbeddings: Bool = false, attentionBias: Bool = false,
                bosTokenId: Int? = nil, eosTokenIds: [Int] = [], recipe: LayerRecipe = .llama,
                layerTypes: [AttentionKind]? = nil, slidingWindow: Int? = nil, slidingRope: RopeSettings? = nil,
                attentionScale: Double? = nil, embeddingScale: Double? = nil, finalLogitSoftcap: Double? = nil,
                attentionLogitSoftcap: Double? = nil) {
        self.modelType = modelType; self.vocabSize = vocabSize; self.hiddenSize = hiddenSize
        self.intermediateSize = intermediateSize; self.numHiddenLayers = numHiddenLayers
        self.numAttentionHeads = numAttentionHeads; self.numKeyValueHeads = numKeyValueHeads
        self.headDim = headDim ?? hiddenSize / max(1, numAttentionHeads)
        self.rmsNormEps = rmsNormEps; self.ropeTheta = ropeTheta; self.ropeScaling = ropeScaling
        self.maxPositionEmbeddings = maxPositionEmbeddings; self.tieWordEmbeddings = tieWordEmbeddings
        self.attentionBias = attentionBias; self.bosTokenId = bosTokenId; self.eosTokenIds = eosTokenIds
        self.recipe = recipe
        // An absurd layer count is left for `validate` to reject rather than allocated here.
        self.layerTypes = layerTypes ?? Array(repeating: .full, count: (0...(1 << 24)).contains(numHiddenLayers) ? numHiddenLayers : 0)
        self.slidingWindow = slidingWindow; self.slidingRope = slidingRope
        self.attentionScale = attentionScale; self.embeddingScale = embeddingScale
        self.finalLogitSoftcap = finalLogitSoftcap; self.attentionLogitSoftcap = attentionLogitSoftcap
    }

    public var qDim: Int { numAttentionHeads * headDim }
    public var kvDim: Int { numKeyValueHeads * headDim }

    /// The architecture description this configuration belongs to.
    public var architecture: any Architecture.Type { Architectures.description(forModelType: modelType) ?? Llama.self }

    /// The scale of q·k as f32.
    public var queryKeyScale: Float { Float(attentionScale ?? 1 / Double(headDim).squareRoot()) }

    /// The window of layer `l` in keys, nil for full attention. A window at least as long as the context is no window.
    public func window(layer l: Int) -> Int? {
        guard l < layerTypes.count, layerTypes[l] == .sliding, let w = slidingWindow else { return nil }
        return w
    }

    /// RoPE base and scaling of layer `l`.
    public func rope(layer l: Int) -> RopeSettings {
        if l < layerTypes.count, layerTypes[l] == .sliding, let s = slidingRope { return s }
        return RopeSettings(theta: ropeTheta, scaling: ropeScaling)
    }

    /// Number of f32 parameters these settings imply, or nil when it overflows. Loaders compare it with what
    /// the file actually stores before allocating, so a crafted config cannot ask for terabytes.
    public var parameterCount: Int? {
        func mul(_ a: Int, _ b: Int) -> Int? { let (r, o) = a.multipliedReportingOverflow(by: b); return o ? nil : r }
        func add(_ xs: [Int?]) -> Int? {
            var s = 0
            for x in xs { guard let x else { return nil }; let (r, o) = s.addingReportingOverflow(x); if o { return nil }; s = r }
            return s
        }
        guard let q = mul(numAttentionHeads, headDim), let kv = mul(numKeyValueHeads, headDim) else { return nil }
        let norms = mul(hiddenSize, recipe.normPlacement == .sandwich ? 4 : 2)
        let perLayer = add([norms, mul(q, hiddenSize), mul(mul(2, kv) ?? -1, hiddenSize), mul(hiddenSize, q),
                            attentionBias ? add([q, kv, kv]) : 0, recipe.qkNorm ? mul(2, headDim) : 0,
                            mul(mul(3, intermediateSize) ?? -1, hiddenSize)])
        let embed = mul(vocabSize, hiddenSize)
        return add([embed, tieWordEmbeddings ? 0 : embed, hiddenSize, perLayer.flatMap { mul($0, numHiddenLayers) }])
    }

    /// Checks the invariants every kernel relies on; `source` names the file in the message.
    public func validate(source: String) throws {
        func bad(_ why: String) -> TransformerError { .invalidConfig(source: source, reason: why) }
        for (name, v) in [("vocab_size", vocabSize), ("hidden_size", hiddenSize), ("intermediate_size", intermediateSize),
                          ("num_hidden_layers", numHiddenLayers), ("num_attention_heads", numAttentionHeads),
                          ("num_key_value_heads", numKeyValueHeads), ("head_dim", headDim)] {
            if v <= 0 || v > 1 << 24 { throw bad("\(name) = \(v) is out of range") }
        }
        if numAttentionHeads % numKeyValueHeads != 0 {
            throw bad("num_attention_heads \(numAttentionHeads) is not a multiple of num_key_value_heads \(numKeyValueHeads)")
        }
        if headDim % 2 != 0 { throw bad("head_dim \(headDim) must be even for RoPE") }
        if maxPositionEmbeddings <= 0 || maxPositionEmbeddings > 1 << 24 {
            throw bad("max_position_embeddings = \(maxPositionEmbeddings) is out of range")
        }
        guard parameterCount != nil else { throw bad("the parameter count overflows") }
        if !(rmsNormEps > 0) || !rmsNormEps.isFinite { throw bad("rms_norm_eps \(rmsNormEps) must be positive") }
        if layerTypes.count != numHiddenLayers {
            throw bad("layer_types lists \(layerTypes.count) layers, num_hidden_layers is \(numHiddenLayers)")
        }
        if layerTypes.contains(.sliding) {
            guard let w = slidingWindow, w > 0, w <= 1 << 24 else {
                throw bad("sliding_window = \(slidingWindow.map(String.init) ?? "null") must be positive when a layer slides")
            }
        }
        for (name, rope) in [("rope_theta", RopeSettings(theta: ropeTheta, scaling: ropeScaling))] + (slidingRope.map { [("sliding-layer rope_theta", $0)] } ?? []) {
            if !(rope.theta > 0) || !rope.theta.isFinite { throw bad("\(name) \(rope.theta) must be positive") }
            if let s = rope.scaling {
                switch s.ropeType {
                case "llama3":
                    if !(s.factor > 0) || !(s.lowFreqFactor > 0) || !(s.highFreqFactor > s.lowFreqFactor) || s.originalMaxPositionEmbeddings <= 0 {
                        throw bad("rope_scaling (llama3) has invalid factors")
                    }
                case "linear":
                    if !(s.factor > 0) || !s.factor.isFinite { throw bad("rope_scaling (linear) factor \(s.factor) must be positive") }
                default:
                    throw bad("rope_scaling type '\(s.ropeType)' is not supported (llama3, linear)")
                }
            }
        }
        for (name, v) in [("attention scale", attentionScale), ("embedding scale", embeddingScale),
                          ("final_logit_softcapping", finalLogitSoftcap), ("attn_logit_softcapping", attentionLogitSoftcap)] {
            if let v, !(v > 0) || !v.isFinite { throw bad("\(name) \(v) must be positive") }
        }
    }
}

/// Attention span of one layer.
public enum AttentionKind: String, Codable, Sendable, Equatable {
    case full = "full_attention"
    case sliding = "sliding_attention"
}

/// How each decoder layer is wired, beyond its sizes.
public struct LayerRecipe: Codable, Sendable, Equatable {
    public enum NormPlacement: String, Codable, Sendable {
        /// x + attn(norm(x)), then + mlp(norm(·)) (Llama).
        case pre
        /// x + norm(attn(norm(x))), then + norm(mlp(norm(·))) (Gemma 2 and 3).
        case sandwich
    }
    public enum Activation: String, Codable, Sendable {
        /// silu(gate)·up (SwiGLU).
        case silu
        /// gelu_tanh(gate)·up (GeGLU with PyTorch's tanh approximation).
        case geluTanh = "gelu_pytorch_tanh"
    }
    public var normPlacement: NormPlacement
    /// 0 for w·x̂ (Llama), 1 for (1 + w)·x̂ (Gemma). Applies to every RMSNorm of the model, QK-norms included.
    public var normWeightOffset: Float
    public var activation: Activation
    /// RMSNorm over each head of q and k before RoPE (Gemma 3, Qwen 3).
    public var qkNorm: Bool

    public init(normPlacement: NormPlacement, normWeightOffset: Float, activation: Activation, qkNorm: Bool) {
        self.normPlacement = normPlacement; self.normWeightOffset = normWeightOffset
        self.activation = activation; self.qkNorm = qkNorm
    }

    public static let llama = LayerRecipe(normPlacement: .pre, normWeightOffset: 0, activation: .silu, qkNorm: false)
}

public enum TransformerError: Error, CustomStringConvertible, Equatable {
    case invalidConfig(source: String, reason: String)
    case missingTensor(source: String, name: String)
    case shapeMismatch(source: String, name: String, expected: [Int], found: [Int])
    case unsupported(source: String, reason: String)

    public var description: String {
        switch self {
        case let .invalidConfig(s, r): return "\(s): invalid model config: \(r)"
        case let .missingTensor(s, n): return "\(s): missing tensor '\(n)'"
        case let .shapeMismatch(s, n, e, f): return "\(s): tensor '\(n)' has shape \(f), expected \(e)"
        case let .unsupported(s, r): return "\(s): unsupported: \(r)"
        }
    }
}
