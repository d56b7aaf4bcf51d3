import Tensors

/// One decoder layer's parameters in Hugging Face layout: every Linear weight is row-major
/// [out_features × in_features], exactly as `model.layers.{i}.*.weight` in safetensors. Which optional tensors
/// exist follows the configuration's recipe (biases, QK-norm, sandwich norms).
public final class LayerWeights: @unchecked Sendable {
    public var inputNorm: Tensor          // [hidden]  before attention
    public var qProj: Tensor              // [qDim × hidden]
    public var kProj: Tensor              // [kvDim × hidden]
    public var vProj: Tensor              // [kvDim × hidden]
    public var oProj: Tensor              // [hidden × qDim]
    public var qBias: Tensor?             // [qDim]   (Qwen2)
    public var kBias: Tensor?             // [kvDim]
    public var vBias: Tensor?             // [kvDim]
    public var qNorm: Tensor?             // [headDim] per-head RMSNorm of q before RoPE (QK-norm)
    public var kNorm: Tensor?             // [headDim]
    public var attnOutputNorm: Tensor?    // [hidden]  on the attention output before the residual add (sandwich)
    public var mlpNorm: Tensor            // [hidden]  before the MLP
    public var gateProj: Tensor           // [intermediate × hidden]
    public var upProj: Tensor             // [intermediate × hidden]
    public var downProj: Tensor           // [hidden × intermediate]
    public var mlpOutputNorm: Tensor?     // [hidden]  on the MLP output before the residual add (sandwich)
    /// q, k and v stacked [(qDim + 2·kvDim) × hidden]; `qProj`, `kProj`, `vProj` are views of it, so one
    /// product computes all three (a few wide GEMMs run faster than many narrow ones).
    public let qkv: Tensor
    /// gate and up stacked [2·intermediate × hidden]; `gateProj` and `upProj` are views of it.
    public let gateUp: Tensor
    let names: TensorNames

    public init(config c: ModelConfig) {
        let H = c.hiddenSize
        names = c.architecture.tensorNames
        inputNorm = Tensor(shape: [H])
        qkv = Tensor(shape: [c.qDim + 2 * c.kvDim, H])
        qProj = Tensor(viewing: qkv, offset: 0, shape: [c.qDim, H])
        kProj = Tensor(viewing: qkv, offset: c.qDim * H, shape: [c.kvDim, H])
        vProj = Tensor(viewing: qkv, offset: (c.qDim + c.kvDim) * H, shape: [c.kvDim, H])
        oProj = Tensor(shape: [c.hiddenSize, c.qDim])
        if c.attentionBias {
            qBias = Tensor(shape: [c.qDim]); kBias = Tensor(shape: [c.kvDim]); vBias = Tensor(shape: [c.kvDim])
        }
        if c.recipe.qkNorm { qNorm = Tensor(shape: [c.headDim]); kNorm = Tensor(shape: [c.headDim]) }
        if c.recipe.normPlacement == .sandwich { attnOutputNorm = Tensor(shape: [H]); mlpOutputNorm = Tensor(shape: [H]) }
        mlpNorm = Tensor(shape: [c.hiddenSize])
        gateUp = Tensor(shape: [2 * c.intermediateSize, H])
        gateProj = Tensor(viewing: gateUp, offset: 0, shape: [c.intermediateSize, H])
        upProj = Tensor(viewing: gateUp, offset: c.intermediateSize * H, shape: [c.intermediateSize, H])
        downProj = Tensor(shape: [c.hiddenSize, c.intermediateSize])
    }

    public func tensor(_ role: LayerParameter) -> Tensor? {
        switch role {
        case .inputNorm: return inputNorm
        case .qProj: return qProj
        case .kProj: return kProj
        case .vProj: return vProj
        case .oProj: return oProj
        case .qBias: return qBias
        case .kBias: return kBias
        case .vBias: return vBias
        case .qNorm: return qNorm
        case .kNorm: return kNorm
        case .attnOutputNorm: return attnOutputNorm
        case .mlpNorm: return mlpNorm
        case .gateProj: return gateProj
        case .upProj: return upProj
        case .downProj: return downProj
        case .mlpOutputNorm: return mlpOutputNorm
        }
    }

    /// (HF name suffix, tensor) for every parameter of this layer, in the architecture's order.
    public var namedParameters: [(String, Tensor)] {
        names.layer.compactMap { e in tensor(e.role).map { (e.hf, $0) } }
    }
}

/// All parameters of a decoder-only causal LM, f32, Hugging Face layout and names (from its architecture description).
public final class ModelWeights: @unchecked Sendable {
    public let config: ModelConfig
    public var embedTokens: Tensor        // [vocab × hidden]
    public var layers: [LayerWeights]
    public var norm: Tensor               // [hidden]
    /// nil when embeddings are tied: the LM head is then `embedTokens`.
    public var lmHead: Tensor?            // [vocab × hidden]

    public init(config: ModelConfig) {
        self.config = config
        embedTokens = Tensor(shape: [config.vocabSize, config.hiddenSize])
        layers = (0..<config.numHiddenLayers).map { _ in LayerWeights(config: config) }
        norm = Tensor(shape: [config.hiddenSize])
        lmHead = config.tieWordEmbeddings ? nil : Tensor(shape: [config.vocabSize, config.hiddenSize])
    }

    /// Wraps existing tensors without copying them (shapes are checked when a `InferenceModel` is built).
    public init(config: ModelConfig, embedTokens: Tensor, layers: [LayerWeights], norm: Tensor, lmHead: Tensor?) {
        self.config = config
        self.embedTokens = embedTokens; self.layers = layers; self.norm = norm
        self.lmHead = config.tieWordEmbeddings ? nil : lmHead
    }

    public var outputWeight: Tensor { lmHead ?? embedTokens }

    /// (HF name, tensor) for every parameter, in a stable order. Tied models list no lm_head.
    public var namedParameters: [(String, Tensor)] {
        let names = config.architecture.tensorNames
        var out: [(String, Tensor)] = [(names.embedding.hf, embedTokens)]
        for (i, layer) in layers.enumerated() {
            out += layer.namedParameters.map { ("model.layers.\(i).\($0.0)", $0.1) }
        }
        out.append((names.finalNorm.hf, norm))
        if let lmHead { out.append((names.lmHead.hf, lmHead)) }
        return out
    }

    public var parameterCount: Int { namedParameters.reduce(0) { $0 + $1.1.count } }

    /// (HF name, shape) of every parameter `ModelWeights(config: c)` would hold, in `namedParameters` order,
    /// without allocating any of them: for optimizer state and memory plans of models too large to build twice.
    public static func parameterShapes(_ c: ModelConfig) -> [(name: String, shape: [Int])] {
        let names = c.architecture.tensorNames
        var out: [(name: String, shape: [Int])] = [(names.embedding.hf, [c.vocabSize, c.hiddenSize])]
        for i in 0..<c.numHiddenLayers {
            for e in names.layer { if let s = shape(of: e.role, c) { out.append(("model.layers.\(i).\(e.hf)", s)) } }
        }
        out.append((names.finalNorm.hf, [c.hiddenSize]))
        if !c.tieWordEmbeddings { out.append((names.lmHead.hf, [c.vocabSize, c.hiddenSize])) }
        return out
    }

    /// Number of parameter elements under `c` (tied embeddings counted once).
    public static func parameterCount(_ c: ModelConfig) -> Int {
        parameterShapes(c).reduce(0) { $0 + $1.shape.reduce(1, *) }
    }

    /// The shape a parameter of role `role` has under `c`, nil when the recipe has no such parameter.
    public static func shape(of role: LayerParameter, _ c: ModelConfig) -> [Int]? {
        let H = c.hiddenSize, I = c.intermediateSize
        switch role {
        case .inputNorm, .mlpNorm: return [H]
        case .attnOutputNorm, .mlpOutputNorm: return c.recipe.normPlacement == .sandwich ? [H] : nil
        case .qProj: return [c.qDim, H]
        case .kProj, .vProj: return [c.kvDim, H]
        case .oProj: return [H, c.qDim]
        case .qBias: return c.attentionBias ? [c.qDim] : nil
        case .kBias, .vBias: return c.attentionBias ? [c.kvDim] : nil
        case .qNorm, .kNorm: return c.recipe.qkNorm ? [c.headDim] : nil
        case .gateProj, .upProj: return [I, H]
        case .downProj: return [H, I]
        }
    }

    /// Checks that every tensor the configuration needs is present with its shape (for wrapped tensors).
    public func checkShapes(source: String) throws {
        let c = config
        func check(_ name: String, _ t: Tensor?, _ shape: [Int]) throws {
            guard let t else { throw TransformerError.missingTensor(source: source, name: name) }
            if t.shape != shape { throw TransformerError.shapeMismatch(source: source, name: name, expected: shape, found: t.shape) }
        }
        let names = c.architecture.tensorNames
        try check(names.embedding.hf, embedTokens, [c.vocabSize, c.hiddenSize])
        try check(names.finalNorm.hf, norm, [c.hiddenSize])
        if !c.tieWordEmbeddings { try check(names.lmHead.hf, lmHead, [c.vocabSize, c.hiddenSize]) }
        if layers.count != c.numHiddenLayers {
            throw TransformerError.invalidConfig(source: source, reason: "\(layers.count) layers present, config says \(c.numHiddenLayers)")
        }
        for (i, l) in layers.enumerated() {
            for e in names.layer {
                guard let shape = Self.shape(of: e.role, c) else { continue }
                try check("model.layers.\(i).\(e.hf)", l.tensor(e.role), shape)
            }
        }
    }
}
