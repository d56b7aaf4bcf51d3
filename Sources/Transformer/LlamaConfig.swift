import Foundation

/// Llama-family architecture settings, keyed like Hugging Face's `config.json`.
/// Covers Llama 2/3.x, Mistral, Qwen2/2.5 (q/k/v biases) and SmolLM2.
public struct LlamaConfig: Codable, Sendable, Equatable {
    public var modelType: String            // "llama", "mistral", "qwen2"
    public var vocabSize: Int
    public var hiddenSize: Int
    public var intermediateSize: Int
    public var numHiddenLayers: Int
    public var numAttentionHeads: Int
    public var numKeyValueHeads: Int
    public var headDim: Int
    public var rmsNormEps: Double
    public var ropeTheta: Double
    public var ropeScaling: RopeScaling?
    public var maxPositionEmbeddings: Int
    public var tieWordEmbeddings: Bool
    public var attentionBias: Bool          // q/k/v biases (Qwen2 has them; o_proj never does there)
    public var bosTokenId: Int?
    public var eosTokenIds: [Int]

    public struct RopeScaling: Codable, Sendable, Equatable {
        public var ropeType: String        // "llama3" supported; "default" = none
        public var factor: Double
        public var lowFreqFactor: Double
        public var highFreqFactor: Double
        public var originalMaxPositionEmbeddings: Int

        public init(ropeType: String, factor: Double, lowFreqFactor: Double, highFreqFactor: Double,
                    originalMaxPositionEmbeddings: Int) {
            self.ropeType = ropeType; self.factor = factor; self.lowFreqFactor = lowFreqFactor
            self.highFreqFactor = highFreqFactor; self.originalMaxPositionEmbeddings = originalMaxPositionEmbeddings
        }
    }

    public init(modelType: String = "llama", vocabSize: Int, hiddenSize: Int, intermediateSize: Int,
                numHiddenLayers: Int, numAttentionHeads: Int, numKeyValueHeads: Int, headDim: Int? = nil,
                rmsNormEps: Double = 1e-5, ropeTheta: Double = 10000, ropeScaling: RopeScaling? = nil,
                maxPositionEmbeddings: Int = 2048, tieWordEmbeddings: Bool = false, attentionBias: Bool = false,
                bosTokenId: Int? = nil, eosTokenIds: [Int] = []) {
        self.modelType = modelType; self.vocabSize = vocabSize; self.hiddenSize = hiddenSize
        self.intermediateSize = intermediateSize; self.numHiddenLayers = numHiddenLayers
        self.numAttentionHeads = numAttentionHeads; self.numKeyValueHeads = numKeyValueHeads
        self.headDim = headDim ?? hiddenSize / numAttentionHeads
        self.rmsNormEps = rmsNormEps; self.ropeTheta = ropeTheta; self.ropeScaling = ropeScaling
        self.maxPositionEmbeddings = maxPositionEmbeddings; self.tieWordEmbeddings = tieWordEmbeddings
        self.attentionBias = attentionBias; self.bosTokenId = bosTokenId; self.eosTokenIds = eosTokenIds
    }

    public var qDim: Int { numAttentionHeads * headDim }

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
        let perLayer = add([mul(2, hiddenSize), mul(q, hiddenSize), mul(mul(2, kv) ?? -1, hiddenSize), mul(hiddenSize, q),
                            attentionBias ? add([q, kv, kv]) : 0, mul(mul(3, intermediateSize) ?? -1, hiddenSize)])
        let embed = mul(vocabSize, hiddenSize)
        return add([embed, tieWordEmbeddings ? 0 : embed, hiddenSize, perLayer.flatMap { mul($0, numHiddenLayers) }])
    }
    public var kvDim: Int { numKeyValueHeads * headDim }

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
        if !(ropeTheta > 0) || !ropeTheta.isFinite { throw bad("rope_theta \(ropeTheta) must be positive") }
        if let s = ropeScaling, s.ropeType == "llama3" {
            if !(s.factor > 0) || !(s.lowFreqFactor > 0) || !(s.highFreqFactor > s.lowFreqFactor) || s.originalMaxPositionEmbeddings <= 0 {
                throw bad("rope_scaling (llama3) has invalid factors")
            }
        }
    }
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
