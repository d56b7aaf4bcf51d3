import Foundation

/// Gemma 3 text models (`gemma3_text`, `Gemma3ForCausalLM`; GGUF `gemma3`):
/// - sandwich norms: (1 + w)·x̂ RMSNorm before and after both attention and the MLP;
/// - GELU-tanh gated MLP; RMSNorm over each head of q and k (QK-norm) before RoPE;
/// - embeddings scaled by √hidden, tied to the LM head; q·k scaled by query_pre_attn_scalar^-½;
/// - sliding-window attention on local layers, full attention on every sixth, each kind with its own RoPE base.
public enum Gemma3: Architecture {
    public static let modelTypes = ["gemma3_text"]
    public static let ggufArchitectures = ["gemma3"]
    public static let ggufNormShift: Float = 1

    public static let recipe = LayerRecipe(normPlacement: .sandwich, normWeightOffset: 1, activation: .geluTanh, qkNorm: true)

    public static let tensorNames = TensorNames(layer: TensorNames.attentionProjections + [
        (.qNorm, "self_attn.q_norm.weight", "attn_q_norm.weight"), (.kNorm, "self_attn.k_norm.weight", "attn_k_norm.weight"),
        (.attnOutputNorm, "post_attention_layernorm.weight", "post_attention_norm.weight"),
        (.mlpNorm, "pre_feedforward_layernorm.weight", "ffn_norm.weight"),
    ] + TensorNames.mlpProjections + [(.mlpOutputNorm, "post_feedforward_layernorm.weight", "post_ffw_norm.weight")])

    /// Layer i is full attention when (i + 1) is a multiple of the pattern (transformers' and llama.cpp's rule).
    static func layerTypes(count: Int, pattern: Int) -> [AttentionKind] {
        (0..<count).map { (pattern > 0 && ($0 + 1) % pattern == 0) ? .full : .sliding }
    }

    /// `config.json` of a Gemma 3 text model, under Hugging Face's names, with transformers' defaults.
    struct HFFields: Decodable {
        var config: ModelConfig

        enum Keys: String, CodingKey {
            case vocab_size, hidden_size, intermediate_size, num_hidden_layers, num_attention_heads, num_key_value_heads
            case head_dim, hidden_activation, hidden_act, max_position_embeddings, rms_norm_eps, tie_word_embeddings
            case rope_parameters, rope_scaling, rope_theta, rope_local_base_freq, attention_bias, query_pre_attn_scalar
            case sliding_window, sliding_window_pattern, layer_types, final_logit_softcapping, attn_logit_softcapping
            case use_bidirectional_attention, bos_token_id, eos_token_id
        }
        /// transformers 5 keys `rope_parameters` by layer type.
        struct PerLayerRope: Decodable { var full_attention: HFConfigDecoding.Rope?; var sliding_attention: HFConfigDecoding.Rope? }

        init(from decoder: Decoder) throws {
            let c = try decoder.container(keyedBy: Keys.self)
            let act = try c.decodeIfPresent(String.self, forKey: .hidden_activation)
                ?? c.decodeIfPresent(String.self, forKey: .hidden_act) ?? "gelu_pytorch_tanh"
            guard act == "gelu_pytorch_tanh" else {
                throw HFConfigDecoding.invalid(Keys.hidden_activation, in: c, "'\(act)' is not supported (gelu_pytorch_tanh)")
            }
            if try c.decodeIfPresent(Bool.self, forKey: .use_bidirectional_attention) == true {
                throw HFConfigDecoding.invalid(Keys.use_bidirectional_attention, in: c, "true is not supported (causal language models only)")
            }
            if try c.decodeIfPresent(Bool.self, forKey: .attention_bias) == true {
                throw HFConfigDecoding.invalid(Keys.attention_bias, in: c, "true is not supported for Gemma 3")
            }
            let layers = try HFConfigDecoding.size(Keys.num_hidden_layers, in: c)
            let heads = try HFConfigDecoding.size(Keys.num_attention_heads, in: c)
            var types = try c.decodeIfPresent([AttentionKind].self, forKey: .layer_types)
            if let t = types, t.count != layers {
                throw HFConfigDecoding.invalid(Keys.layer_types, in: c, "lists \(t.count) layers, num_hidden_layers is \(layers)")
            }
            if types == nil { types = Gemma3.layerTypes(count: layers, pattern: try c.decodeIfPresent(Int.self, forKey: .sliding_window_pattern) ?? 6) }
            // RoPE: per-layer-type `rope_parameters` (transformers 5), else rope_theta / rope_local_base_freq /
            // rope_scaling (the latter applies to full-attention layers only).
            var full = HFConfigDecoding.Rope?.none, local = HFConfigDecoding.Rope?.none
            if let per = try? c.decodeIfPresent(PerLayerRope.self, forKey: .rope_parameters),
               per.full_attention != nil || per.sliding_attention != nil {
                full = per.full_attention; local = per.sliding_attention
            } else {
                full = try c.decodeIfPresent(HFConfigDecoding.Rope.self, forKey: .rope_scaling)
            }
            let fullTheta = try full?.theta ?? c.decodeIfPresent(Double.self, forKey: .rope_theta) ?? 1_000_000
            let localTheta = try local?.theta ?? c.decodeIfPresent(Double.self, forKey: .rope_local_base_freq) ?? 10_000
            let headDim = try HFConfigDecoding.optionalSize(Keys.head_dim, in: c) ?? 256
            let scalar = try c.decodeIfPresent(Double.self, forKey: .query_pre_attn_scalar) ?? 256
            guard scalar > 0 else { throw HFConfigDecoding.invalid(Keys.query_pre_attn_scalar, in: c, "\(scalar) must be positive") }
            let window = try c.decodeIfPresent(Int.self, forKey: .sliding_window) ?? 4096
            guard window > 0 else { throw HFConfigDecoding.invalid(Keys.sliding_window, in: c, "\(window) must be positive") }
            let hidden = try HFConfigDecoding.size(Keys.hidden_size, in: c)
            config = ModelConfig(
                modelType: "gemma3_text", vocabSize: try HFConfigDecoding.size(Keys.vocab_size, in: c), hiddenSize: hidden,
                intermediateSize: try HFConfigDecoding.size(Keys.intermediate_size, in: c), numHiddenLayers: layers,
                numAttentionHeads: heads, numKeyValueHeads: try HFConfigDecoding.optionalSize(Keys.num_key_value_heads, in: c) ?? heads,
                headDim: headDim, rmsNormEps: try c.decodeIfPresent(Double.self, forKey: .rms_norm_eps) ?? 1e-6,
                ropeTheta: fullTheta, ropeScaling: full?.scaling,
                maxPositionEmbeddings: try c.decodeIfPresent(Int.self, forKey: .max_position_embeddings) ?? 131_072,
                tieWordEmbeddings: try c.decodeIfPresent(Bool.self, forKey: .tie_word_embeddings) ?? true,
                attentionBias: false, bosTokenId: try c.decodeIfPresent(Int.self, forKey: .bos_token_id) ?? 2,
                eosTokenIds: try c.decodeIfPresent(HFConfigDecoding.TokenIds.self, forKey: .eos_token_id)?.ids ?? [1],
                recipe: Gemma3.recipe, layerTypes: types, slidingWindow: window,
                slidingRope: .init(theta: localTheta, scaling: local?.scaling),
                attentionScale: 1 / scalar.squareRoot(), embeddingScale: Double(hidden).squareRoot(),
                finalLogitSoftcap: try c.decodeIfPresent(Double.self, forKey: .final_logit_softcapping),
                // Gemma 3's config carries attn_logit_softcapping, but transformers' Gemma 3 attention never passes
                // it on (Gemma 2's does), and llama.cpp's gemma3 graph has none either: it is read and not applied.
                attentionLogitSoftcap: nil)
        }
    }

    public static func config(fromHF data: Data, source: String) throws -> ModelConfig {
        try HFConfigDecoding.decode(HFFields.self, data, source: source).config
    }

    /// llama.cpp's keys. What the file does not say takes llama.cpp's and transformers' values: local RoPE base
    /// 10 000, every sixth layer global, q·k scaled by head_dim^-½ (query_pre_attn_scalar = head_dim holds for
    /// the 270M, 1B, 4B and 12B models; the 27B uses hidden/heads, which GGUF does not record).
    public static func config(fromGGUF h: GGUFHeader) throws -> ModelConfig {
        let s = try h.commonSizes()
        var scaling: ModelConfig.RopeScaling?
        if let type = h.string("rope.scaling.type"), type != "none" {
            guard type == "linear" else {
                throw TransformerError.unsupported(source: h.source, reason: "metadata gemma3.rope.scaling.type '\(type)' (linear)")
            }
            scaling = .init(ropeType: "linear", factor: try h.double("rope.scaling.factor", default: 1))
        }
        let eos = try h.optionalInt("tokenizer.ggml.eos_token_id")
        return ModelConfig(
            modelType: "gemma3_text", vocabSize: s.vocab, hiddenSize: s.hidden, intermediateSize: s.ffn, numHiddenLayers: s.layers,
            numAttentionHeads: s.heads, numKeyValueHeads: s.kvHeads, headDim: s.headDim,
            rmsNormEps: try h.double("attention.layer_norm_rms_epsilon", default: 1e-6),
            ropeTheta: try h.double("rope.freq_base", default: 1_000_000), ropeScaling: scaling, maxPositionEmbeddings: s.context,
            tieWordEmbeddings: !h.hasTensor("output.weight"), attentionBias: false,
            bosTokenId: try h.optionalInt("tokenizer.ggml.bos_token_id"), eosTokenIds: eos.map { [$0] } ?? [],
            recipe: recipe, layerTypes: layerTypes(count: s.layers, pattern: 6),
            slidingWindow: try h.int("attention.sliding_window", default: 4096), slidingRope: .init(theta: 10_000),
            attentionScale: 1 / Double(s.headDim).squareRoot(), embeddingScale: Double(s.hidden).squareRoot(),
            finalLogitSoftcap: try h.optionalDouble("final_logit_softcapping"))
    }

    public static func hfConfigJSON(_ c: ModelConfig) -> [String: Any] {
        func rope(_ r: ModelConfig.RopeSettings) -> [String: Any] {
            var d: [String: Any] = ["rope_type": r.scaling?.ropeType ?? "default", "rope_theta": r.theta]
            if let f = r.scaling?.factor { d["factor"] = f }
            return d
        }
        let scale = c.attentionScale ?? 1 / Double(c.headDim).squareRoot()
        let scalar = 1 / (scale * scale)
        return [
            "architectures": ["Gemma3ForCausalLM"], "model_type": "gemma3_text",
            "vocab_size": c.vocabSize, "hidden_size": c.hiddenSize, "intermediate_size": c.intermediateSize,
            "num_hidden_layers": c.numHiddenLayers, "num_attention_heads": c.numAttentionHeads,
            "num_key_value_heads": c.numKeyValueHeads, "head_dim": c.headDim, "hidden_activation": "gelu_pytorch_tanh",
            "rms_norm_eps": c.rmsNormEps, "max_position_embeddings": c.maxPositionEmbeddings,
            "tie_word_embeddings": c.tieWordEmbeddings, "attention_bias": false,
            "query_pre_attn_scalar": scalar.rounded() == scalar ? Int(scalar) as Any : scalar,
            "sliding_window": c.slidingWindow ?? 4096, "layer_types": c.layerTypes.map(\.rawValue),
            "rope_parameters": ["full_attention": rope(c.rope(layer: c.layerTypes.firstIndex(of: .full) ?? 0)),
                                "sliding_attention": rope(c.slidingRope ?? .init(theta: c.ropeTheta, scaling: c.ropeScaling))],
            "final_logit_softcapping": c.finalLogitSoftcap ?? NSNull(), "attn_logit_softcapping": NSNull(),
        ]
    }

    public static func ggufMetadata(_ c: ModelConfig) -> (architecture: String, keys: [(String, GGUFScalar)]) {
        var keys = GGUFHeader.commonKeys(c) + [
            ("attention.key_length", .uint32(UInt32(c.headDim))), ("attention.value_length", .uint32(UInt32(c.headDim))),
            ("attention.sliding_window", .uint32(UInt32(c.slidingWindow ?? 4096))),
        ]
        if let s = c.ropeScaling {
            keys += [("rope.scaling.type", .string(s.ropeType)), ("rope.scaling.factor", .float32(Float(s.factor)))]
        }
        return ("gemma3", keys.map { ("gemma3.\($0.0)", $0.1) })
    }
}
