import Foundation

/// Llama 2/3.x and SmolLM2 (`LlamaForCausalLM`; GGUF `llama`): pre-norm layers, w·x̂ RMSNorm, SwiGLU MLP,
/// RoPE with optional llama3 scaling, optional q/k/v biases.
public enum Llama: Architecture {
    public static let modelTypes = ["llama"]
    public static let ggufArchitectures = ["llama"]
    public static let ggufPermutesQK = true

    public static let tensorNames = TensorNames(layer: TensorNames.attentionProjections
        + [(.mlpNorm, "post_attention_layernorm.weight", "ffn_norm.weight")] + TensorNames.mlpProjections)

    public static func config(fromHF data: Data, source: String) throws -> ModelConfig {
        try HFConfigDecoding.decode(LlamaFamilyConfig.self, data, source: source).modelConfig(modelType: "llama")
    }

    public static func config(fromGGUF h: GGUFHeader) throws -> ModelConfig {
        try LlamaFamilyConfig.fromGGUF(h, modelType: "llama")
    }

    public static func hfConfigJSON(_ c: ModelConfig) -> [String: Any] { LlamaFamilyConfig.json(c, className: "LlamaForCausalLM") }

    public static func ggufMetadata(_ c: ModelConfig) -> (architecture: String, keys: [(String, GGUFScalar)]) {
        ("llama", LlamaFamilyConfig.ggufKeys(c, arch: "llama"))
    }
}

/// The `config.json` fields Llama, Mistral and Qwen2 share, under Hugging Face's names.
struct LlamaFamilyConfig: Decodable {
    var vocabSize, hiddenSize, intermediateSize, numHiddenLayers, numAttentionHeads: Int
    var numKeyValueHeads: Int?
    var headDim: Int?
    var rmsNormEps: Double?
    var ropeTheta: Double?
    var rope: HFConfigDecoding.Rope?
    var maxPositionEmbeddings: Int?
    var tieWordEmbeddings: Bool?
    var attentionBias: Bool?
    var bosTokenId: Int?
    var eosTokenId: HFConfigDecoding.TokenIds?
    var slidingWindow: Int?
    var useSlidingWindow: Bool?
    var maxWindowLayers: Int?
    var layerTypes: [AttentionKind]?

    enum CodingKeys: String, CodingKey {
        case vocabSize = "vocab_size", hiddenSize = "hidden_size", intermediateSize = "intermediate_size"
        case numHiddenLayers = "num_hidden_layers", numAttentionHeads = "num_attention_heads"
        case numKeyValueHeads = "num_key_value_heads", headDim = "head_dim", rmsNormEps = "rms_norm_eps"
        case ropeTheta = "rope_theta", ropeScaling = "rope_scaling", ropeParameters = "rope_parameters"
        case maxPositionEmbeddings = "max_position_embeddings", tieWordEmbeddings = "tie_word_embeddings"
        case attentionBias = "attention_bias", mlpBias = "mlp_bias", hiddenAct = "hidden_act"
        case bosTokenId = "bos_token_id", eosTokenId = "eos_token_id", slidingWindow = "sliding_window"
        case useSlidingWindow = "use_sliding_window", maxWindowLayers = "max_window_layers", layerTypes = "layer_types"
    }

    init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        if let act = try c.decodeIfPresent(String.self, forKey: .hiddenAct), act != "silu" {
            throw HFConfigDecoding.invalid(CodingKeys.hiddenAct, in: c, "'\(act)' is not supported here (silu)")
        }
        if try c.decodeIfPresent(Bool.self, forKey: .mlpBias) == true {
            throw HFConfigDecoding.invalid(CodingKeys.mlpBias, in: c, "true is not supported (MLP biases)")
        }
        vocabSize = try HFConfigDecoding.size(CodingKeys.vocabSize, in: c)
        hiddenSize = try HFConfigDecoding.size(CodingKeys.hiddenSize, in: c)
        intermediateSize = try HFConfigDecoding.size(CodingKeys.intermediateSize, in: c)
        numHiddenLayers = try HFConfigDecoding.size(CodingKeys.numHiddenLayers, in: c)
        numAttentionHeads = try HFConfigDecoding.size(CodingKeys.numAttentionHeads, in: c)
        numKeyValueHeads = try HFConfigDecoding.optionalSize(CodingKeys.numKeyValueHeads, in: c)
        headDim = try HFConfigDecoding.optionalSize(CodingKeys.headDim, in: c)
        rmsNormEps = try c.decodeIfPresent(Double.self, forKey: .rmsNormEps)
        ropeTheta = try c.decodeIfPresent(Double.self, forKey: .ropeTheta)
        // transformers 5 writes `rope_parameters` (with rope_theta inside); older files `rope_scaling`.
        rope = try c.decodeIfPresent(HFConfigDecoding.Rope.self, forKey: .ropeParameters)
            ?? c.decodeIfPresent(HFConfigDecoding.Rope.self, forKey: .ropeScaling)
        maxPositionEmbeddings = try c.decodeIfPresent(Int.self, forKey: .maxPositionEmbeddings)
        tieWordEmbeddings = try c.decodeIfPresent(Bool.self, forKey: .tieWordEmbeddings)
        attentionBias = try c.decodeIfPresent(Bool.self, forKey: .attentionBias)
        bosTokenId = try c.decodeIfPresent(Int.self, forKey: .bosTokenId)
        eosTokenId = try c.decodeIfPresent(HFConfigDecoding.TokenIds.self, forKey: .eosTokenId)
        slidingWindow = try c.decodeIfPresent(Int.self, forKey: .slidingWindow)
        useSlidingWindow = try c.decodeIfPresent(Bool.self, forKey: .useSlidingWindow)
        maxWindowLayers = try c.decodeIfPresent(Int.self, forKey: .maxWindowLayers)
        layerTypes = try c.decodeIfPresent([AttentionKind].self, forKey: .layerTypes)
        if let w = slidingWindow, w <= 0 { throw HFConfigDecoding.invalid(CodingKeys.slidingWindow, in: c, "\(w) must be positive") }
        if let t = layerTypes, t.count != numHiddenLayers {
            throw HFConfigDecoding.invalid(CodingKeys.layerTypes, in: c, "lists \(t.count) layers, num_hidden_layers is \(numHiddenLayers)")
        }
    }

    /// `layers` holds which layers slide (the caller's family rule); an explicit `layer_types` wins.
    func modelConfig(modelType: String, attentionBias forcedBias: Bool? = nil, sliding: [AttentionKind]? = nil) -> ModelConfig {
        let types = layerTypes ?? sliding
        return ModelConfig(
            modelType: modelType, vocabSize: vocabSize, hiddenSize: hiddenSize, intermediateSize: intermediateSize,
            numHiddenLayers: numHiddenLayers, numAttentionHeads: numAttentionHeads,
            numKeyValueHeads: numKeyValueHeads ?? numAttentionHeads, headDim: headDim ?? hiddenSize / numAttentionHeads,
            rmsNormEps: rmsNormEps ?? 1e-6, ropeTheta: rope?.theta ?? ropeTheta ?? 10000, ropeScaling: rope?.scaling,
            maxPositionEmbeddings: maxPositionEmbeddings ?? 2048, tieWordEmbeddings: tieWordEmbeddings ?? false,
            attentionBias: forcedBias ?? attentionBias ?? false, bosTokenId: bosTokenId, eosTokenIds: eosTokenId?.ids ?? [],
            recipe: .llama, layerTypes: types, slidingWindow: types?.contains(.sliding) == true ? slidingWindow : nil)
    }

    static func fromGGUF(_ h: GGUFHeader, modelType: String, attentionBias forcedBias: Bool? = nil) throws -> ModelConfig {
        if h.hasTensor("rope_freqs.weight") {
            throw TransformerError.unsupported(source: h.source, reason: "per-frequency RoPE factors (rope_freqs.weight, Llama 3.1 scaling in GGUF); load the Hugging Face folder instead")
        }
        let s = try h.commonSizes()
        let eos = try h.optionalInt("tokenizer.ggml.eos_token_id")
        return ModelConfig(
            modelType: modelType, vocabSize: s.vocab, hiddenSize: s.hidden, intermediateSize: s.ffn, numHiddenLayers: s.layers,
            numAttentionHeads: s.heads, numKeyValueHeads: s.kvHeads, headDim: s.headDim,
            rmsNormEps: try h.double("attention.layer_norm_rms_epsilon", default: 1e-5),
            ropeTheta: try h.double("rope.freq_base", default: 10000), maxPositionEmbeddings: s.context,
            tieWordEmbeddings: !h.hasTensor("output.weight"),
            attentionBias: forcedBias ?? h.hasTensor("blk.0.attn_q.bias"),
            bosTokenId: try h.optionalInt("tokenizer.ggml.bos_token_id"), eosTokenIds: eos.map { [$0] } ?? [])
    }

    static func json(_ c: ModelConfig, className: String, biasKey: Bool = true) -> [String: Any] {
        var json: [String: Any] = [
            "architectures": [className], "model_type": c.modelType,
            "vocab_size": c.vocabSize, "hidden_size": c.hiddenSize, "intermediate_size": c.intermediateSize,
            "num_hidden_layers": c.numHiddenLayers, "num_attention_heads": c.numAttentionHeads,
            "num_key_value_heads": c.numKeyValueHeads, "head_dim": c.headDim, "hidden_act": "silu",
            "rms_norm_eps": c.rmsNormEps, "rope_theta": c.ropeTheta,
            "max_position_embeddings": c.maxPositionEmbeddings, "tie_word_embeddings": c.tieWordEmbeddings,
        ]
        if biasKey { json["attention_bias"] = c.attentionBias; json["mlp_bias"] = false }
        if let s = c.ropeScaling {
            var r: [String: Any] = ["rope_type": s.ropeType, "factor": s.factor]
            if s.ropeType == "llama3" {
                r["low_freq_factor"] = s.lowFreqFactor; r["high_freq_factor"] = s.highFreqFactor
                r["original_max_position_embeddings"] = s.originalMaxPositionEmbeddings
            }
            json["rope_scaling"] = r
        }
        if c.layerTypes.contains(.sliding) { json["layer_types"] = c.layerTypes.map(\.rawValue) }
        if let w = c.slidingWindow { json["sliding_window"] = w }
        return json
    }

    static func ggufKeys(_ c: ModelConfig, arch: String) -> [(String, GGUFScalar)] {
        var keys = GGUFHeader.commonKeys(c) + [
            ("rope.dimension_count", .uint32(UInt32(c.headDim))), ("vocab_size", .uint32(UInt32(c.vocabSize))),
        ]
        if let s = c.ropeScaling, s.ropeType == "linear" {
            keys += [("rope.scaling.type", .string("linear")), ("rope.scaling.factor", .float32(Float(s.factor)))]
        }
        if c.headDim * c.numAttentionHeads != c.hiddenSize {
            keys += [("attention.key_length", .uint32(UInt32(c.headDim))), ("attention.value_length", .uint32(UInt32(c.headDim)))]
        }
        return keys.map { ("\(arch).\($0.0)", $0.1) }
    }
}
