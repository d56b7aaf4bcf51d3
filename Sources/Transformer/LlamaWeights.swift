import Tensors

/// One decoder layer's parameters in Hugging Face layout: every Linear weight is row-major
/// [out_features × in_features], exactly as `model.layers.{i}.*.weight` in safetensors.
public final class LayerWeights: @unchecked Sendable {
    public var inputNorm: Tensor          // [hidden]
    public var qProj: Tensor              // [qDim × hidden]
    public var kProj: Tensor              // [kvDim × hidden]
    public var vProj: Tensor              // [kvDim × hidden]
    public var oProj: Tensor              // [hidden × qDim]
    public var qBias: Tensor?             // [qDim]   (Qwen2)
    public var kBias: Tensor?             // [kvDim]
    public var vBias: Tensor?             // [kvDim]
    public var postAttentionNorm: Tensor  // [hidden]
    public var gateProj: Tensor           // [intermediate × hidden]
    public var upProj: Tensor             // [intermediate × hidden]
    public var downProj: Tensor           // [hidden × intermediate]
    /// q, k and v stacked [(qDim + 2·kvDim) × hidden]; `qProj`, `kProj`, `vProj` are views of it, so one
    /// product computes all three (a few wide GEMMs run faster than many narrow ones).
    public let qkv: Tensor
    /// gate and up stacked [2·intermediate × hidden]; `gateProj` and `upProj` are views of it.
    public let gateUp: Tensor

    public init(config c: LlamaConfig) {
        let H = c.hiddenSize
        inputNorm = Tensor(shape: [H])
        qkv = Tensor(shape: [c.qDim + 2 * c.kvDim, H])
        qProj = Tensor(viewing: qkv, offset: 0, shape: [c.qDim, H])
        kProj = Tensor(viewing: qkv, offset: c.qDim * H, shape: [c.kvDim, H])
        vProj = Tensor(viewing: qkv, offset: (c.qDim + c.kvDim) * H, shape: [c.kvDim, H])
        oProj = Tensor(shape: [c.hiddenSize, c.qDim])
        if c.attentionBias {
            qBias = Tensor(shape: [c.qDim]); kBias = Tensor(shape: [c.kvDim]); vBias = Tensor(shape: [c.kvDim])
        }
        postAttentionNorm = Tensor(shape: [c.hiddenSize])
        gateUp = Tensor(shape: [2 * c.intermediateSize, H])
        gateProj = Tensor(viewing: gateUp, offset: 0, shape: [c.intermediateSize, H])
        upProj = Tensor(viewing: gateUp, offset: c.intermediateSize * H, shape: [c.intermediateSize, H])
        downProj = Tensor(shape: [c.hiddenSize, c.intermediateSize])
    }

    /// (HF name suffix, tensor) for every parameter of this layer.
    public var namedParameters: [(String, Tensor)] {
        var out: [(String, Tensor)] = [
            ("input_layernorm.weight", inputNorm),
            ("self_attn.q_proj.weight", qProj), ("self_attn.k_proj.weight", kProj),
            ("self_attn.v_proj.weight", vProj), ("self_attn.o_proj.weight", oProj),
        ]
        if let qBias, let kBias, let vBias {
            out += [("self_attn.q_proj.bias", qBias), ("self_attn.k_proj.bias", kBias), ("self_attn.v_proj.bias", vBias)]
        }
        out += [("post_attention_layernorm.weight", postAttentionNorm),
                ("mlp.gate_proj.weight", gateProj), ("mlp.up_proj.weight", upProj), ("mlp.down_proj.weight", downProj)]
        return out
    }
}

/// All parameters of a Llama-family causal LM, f32, Hugging Face layout and names.
public final class LlamaWeights: @unchecked Sendable {
    public let config: LlamaConfig
    public var embedTokens: Tensor        // [vocab × hidden]
    public var layers: [LayerWeights]
    public var norm: Tensor               // [hidden]
    /// nil when embeddings are tied: the LM head is then `embedTokens`.
    public var lmHead: Tensor?            // [vocab × hidden]

    public init(config: LlamaConfig) {
        self.config = config
        embedTokens = Tensor(shape: [config.vocabSize, config.hiddenSize])
        layers = (0..<config.numHiddenLayers).map { _ in LayerWeights(config: config) }
        norm = Tensor(shape: [config.hiddenSize])
        lmHead = config.tieWordEmbeddings ? nil : Tensor(shape: [config.vocabSize, config.hiddenSize])
    }

    /// Wraps existing tensors without copying them (shapes are checked when a `LlamaModel` is built).
    public init(config: LlamaConfig, embedTokens: Tensor, layers: [LayerWeights], norm: Tensor, lmHead: Tensor?) {
        self.config = config
        self.embedTokens = embedTokens; self.layers = layers; self.norm = norm
        self.lmHead = config.tieWordEmbeddings ? nil : lmHead
    }

    public var outputWeight: Tensor { lmHead ?? embedTokens }

    /// (HF name, tensor) for every parameter, in a stable order. Tied models list no lm_head.
    public var namedParameters: [(String, Tensor)] {
        var out: [(String, Tensor)] = [("model.embed_tokens.weight", embedTokens)]
        for (i, layer) in layers.enumerated() {
            out += layer.namedParameters.map { ("model.layers.\(i).\($0.0)", $0.1) }
        }
        out.append(("model.norm.weight", norm))
        if let lmHead { out.append(("lm_head.weight", lmHead)) }
        return out
    }

    public var parameterCount: Int { namedParameters.reduce(0) { $0 + $1.1.count } }
}
