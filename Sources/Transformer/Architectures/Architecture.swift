import Foundation

/// One model family, described in one file: how its Hugging Face `config.json` and its GGUF metadata map onto a
/// `ModelConfig`, the names of its tensors in both formats, and how to write both back. Everything else
/// (inference, training, loading, export, the FLOP count) reads the resulting `ModelConfig` and `TensorNames`.
///
/// Adding a family: write `Architectures/<Family>.swift` conforming to this, and list it in `Architectures.all`.
public protocol Architecture {
    /// Hugging Face `model_type` values the description reads.
    static var modelTypes: [String] { get }
    /// llama.cpp `general.architecture` values it reads.
    static var ggufArchitectures: [String] { get }
    /// Decodes `config.json` (already known to carry one of `modelTypes`), validating as it goes.
    static func config(fromHF data: Data, source: String) throws -> ModelConfig
    /// Reads llama.cpp's metadata keys of a GGUF file.
    static func config(fromGGUF header: GGUFHeader) throws -> ModelConfig
    /// A `config.json` object transformers' AutoModelForCausalLM loads as the same model.
    static func hfConfigJSON(_ c: ModelConfig) -> [String: Any]
    /// `general.architecture` and the `<arch>.*` keys llama.cpp reads for this model.
    static func ggufMetadata(_ c: ModelConfig) -> (architecture: String, keys: [(String, GGUFScalar)])
    static var tensorNames: TensorNames { get }
    /// llama.cpp's converter reorders the rows of Q and K so each head's rotary pairs are adjacent (its "normal"
    /// RoPE) for this family; HF keeps the two halves apart (rotate_half).
    static var ggufPermutesQK: Bool { get }
    /// llama.cpp computes w·x̂ for every RMSNorm, so a (1 + w)·x̂ family's converter stores w + 1.
    static var ggufNormShift: Float { get }
}

public extension Architecture {
    static var ggufPermutesQK: Bool { false }
    static var ggufNormShift: Float { 0 }
}

/// The registry of architecture descriptions.
public enum Architectures {
    public static let all: [any Architecture.Type] = [Llama.self, Mistral.self, Qwen2.self, Gemma3.self]

    public static func description(forModelType t: String) -> (any Architecture.Type)? {
        all.first { $0.modelTypes.contains(t) }
    }

    public static func description(forGGUF arch: String) -> (any Architecture.Type)? {
        all.first { $0.ggufArchitectures.contains(arch) }
    }

    public static var supportedModelTypes: [String] { all.flatMap { $0.modelTypes } }
    public static var supportedGGUFArchitectures: [String] { all.flatMap { $0.ggufArchitectures } }

    /// Reads `config.json`: finds the description by `model_type`, then lets it decode the rest.
    public static func config(fromHF data: Data, source: String) throws -> ModelConfig {
        struct ModelType: Decodable { var model_type: String? }
        let type: String?
        do { type = try JSONDecoder().decode(ModelType.self, from: data).model_type } catch {
            throw TransformerError.invalidConfig(source: source, reason: HFConfigDecoding.explain(error))
        }
        guard let type, let arch = description(forModelType: type) else {
            throw TransformerError.unsupported(source: source,
                reason: "model_type '\(type ?? "")' (supported: \(supportedModelTypes.joined(separator: ", ")))")
        }
        let c = try arch.config(fromHF: data, source: source)
        try c.validate(source: source)
        return c
    }

    /// Reads a GGUF file's metadata through the description its `general.architecture` names.
    public static func config(fromGGUF header: GGUFHeader) throws -> ModelConfig {
        guard let arch = description(forGGUF: header.architecture) else {
            throw TransformerError.unsupported(source: header.source,
                reason: "architecture '\(header.architecture)' (supported: \(supportedGGUFArchitectures.joined(separator: ", ")))")
        }
        let c = try arch.config(fromGGUF: header)
        try c.validate(source: header.source)
        return c
    }
}

// MARK: - Tensor names

/// The parameters a decoder layer may have, by role (the same role has different HF names across families:
/// Llama's `post_attention_layernorm` is the MLP's input norm, Gemma's normalises the attention output).
public enum LayerParameter: String, CaseIterable, Sendable {
    case inputNorm, qProj, kProj, vProj, oProj, qBias, kBias, vBias, qNorm, kNorm
    case attnOutputNorm, mlpNorm, gateProj, upProj, downProj, mlpOutputNorm
}

/// Hugging Face and GGUF names of every tensor of one family.
public struct TensorNames: Sendable {
    public struct Entry: Sendable { public let role: LayerParameter; public let hf: String; public let gguf: String }
    /// Per-layer tensors in the order `namedParameters` lists them; names are suffixes after
    /// `model.layers.{i}.` and `blk.{i}.`.
    public let layer: [Entry]
    public let embedding = (hf: "model.embed_tokens.weight", gguf: "token_embd.weight")
    public let finalNorm = (hf: "model.norm.weight", gguf: "output_norm.weight")
    public let lmHead = (hf: "lm_head.weight", gguf: "output.weight")

    public init(layer: [(LayerParameter, String, String)]) {
        self.layer = layer.map { Entry(role: $0.0, hf: $0.1, gguf: $0.2) }
    }

    /// The attention block's input norm and projections (with their optional biases) under the names Llama, Qwen2,
    /// Mistral and Gemma share.
    public static let attentionProjections: [(LayerParameter, String, String)] = [
        (.inputNorm, "input_layernorm.weight", "attn_norm.weight"),
        (.qProj, "self_attn.q_proj.weight", "attn_q.weight"), (.kProj, "self_attn.k_proj.weight", "attn_k.weight"),
        (.vProj, "self_attn.v_proj.weight", "attn_v.weight"), (.oProj, "self_attn.o_proj.weight", "attn_output.weight"),
        (.qBias, "self_attn.q_proj.bias", "attn_q.bias"), (.kBias, "self_attn.k_proj.bias", "attn_k.bias"),
        (.vBias, "self_attn.v_proj.bias", "attn_v.bias"),
    ]

    /// The gated MLP's three projections, likewise shared.
    public static let mlpProjections: [(LayerParameter, String, String)] = [
        (.gateProj, "mlp.gate_proj.weight", "ffn_gate.weight"), (.upProj, "mlp.up_proj.weight", "ffn_up.weight"),
        (.downProj, "mlp.down_proj.weight", "ffn_down.weight"),
    ]

    public func hfName(layer l: Int, _ role: LayerParameter) -> String? {
        layer.first { $0.role == role }.map { "model.layers.\(l).\($0.hf)" }
    }

    /// HF parameter name → GGUF tensor name, nil for names this family has none for.
    public func ggufName(forHF name: String) -> String? {
        if name == embedding.hf { return embedding.gguf }
        if name == finalNorm.hf { return finalNorm.gguf }
        if name == lmHead.hf { return lmHead.gguf }
        let prefix = "model.layers."
        guard name.hasPrefix(prefix) else { return nil }
        let rest = name.dropFirst(prefix.count)
        guard let dot = rest.firstIndex(of: "."), let l = Int(rest[..<dot]) else { return nil }
        let suffix = rest[rest.index(after: dot)...]
        return layer.first { $0.hf == suffix }.map { "blk.\(l).\($0.gguf)" }
    }

    /// GGUF tensor name → HF parameter name, nil for tensors we do not use.
    public func hfName(forGGUF name: String) -> String? {
        if name == embedding.gguf { return embedding.hf }
        if name == finalNorm.gguf { return finalNorm.hf }
        if name == lmHead.gguf { return lmHead.hf }
        let parts = name.split(separator: ".", maxSplits: 2).map(String.init)
        guard parts.count == 3, parts[0] == "blk", let l = Int(parts[1]) else { return nil }
        return layer.first { $0.gguf == parts[2] }.map { "model.layers.\(l).\($0.hf)" }
    }

    /// The role of an HF parameter name (nil for the embedding, final norm and LM head).
    public func role(ofHF name: String) -> LayerParameter? {
        guard name.hasPrefix("model.layers."), let dot = name.dropFirst(13).firstIndex(of: ".") else { return nil }
        let suffix = name[name.index(after: dot)...]
        return layer.first { $0.hf == suffix }?.role
    }
}

// MARK: - GGUF metadata

/// A scalar metadata value in GGUF, as the architecture descriptions write them.
public enum GGUFScalar: Sendable, Equatable {
    case uint32(UInt32), float32(Float), string(String), bool(Bool)
}

/// What an architecture description may read from a GGUF file: its metadata by key and which tensors it holds.
/// Runtime fills this from the file; every lookup names the key in its error.
public struct GGUFHeader {
    public let source: String
    public let architecture: String
    let integer: (String) -> Int??
    let real: (String) -> Double??
    let text: (String) -> String?
    /// A tensor's shape in Hugging Face order (outermost first), nil when the file has no such tensor.
    public let tensorShape: (String) -> [Int]?
    /// Entries of `tokenizer.ggml.tokens`, when present.
    public let tokenCount: Int?

    /// `integer(key)`: nil when the key is absent, .some(nil) when it is present but not an integer.
    public init(source: String, architecture: String, integer: @escaping (String) -> Int??, real: @escaping (String) -> Double??,
                text: @escaping (String) -> String?, tensorShape: @escaping (String) -> [Int]?, tokenCount: Int?) {
        self.source = source; self.architecture = architecture; self.integer = integer; self.real = real; self.text = text
        self.tensorShape = tensorShape; self.tokenCount = tokenCount
    }

    func bad(_ key: String, _ why: String) -> TransformerError { .invalidConfig(source: source, reason: "metadata \(key) \(why)") }

    /// `<architecture>.<key>` as an integer; `default` when absent, an error naming the key otherwise.
    public func int(_ key: String, default d: Int? = nil) throws -> Int {
        let full = key.hasPrefix("tokenizer.") ? key : "\(architecture).\(key)"
        switch integer(full) {
        case .some(.some(let v)): return v
        case .some(.none): throw bad(full, "is not an integer")
        case .none:
            if let d { return d }
            throw bad(full, "is missing")
        }
    }

    public func optionalInt(_ key: String) throws -> Int? {
        let full = key.hasPrefix("tokenizer.") ? key : "\(architecture).\(key)"
        switch integer(full) {
        case .some(.some(let v)): return v
        case .some(.none): throw bad(full, "is not an integer")
        case .none: return nil
        }
    }

    public func double(_ key: String, default d: Double) throws -> Double {
        let full = "\(architecture).\(key)"
        switch real(full) {
        case .some(.some(let v)): return v
        case .some(.none): throw bad(full, "is not a number")
        case .none: return d
        }
    }

    public func optionalDouble(_ key: String) throws -> Double? {
        let full = "\(architecture).\(key)"
        switch real(full) {
        case .some(.some(let v)): return v
        case .some(.none): throw bad(full, "is not a number")
        case .none: return nil
        }
    }

    public func string(_ key: String) -> String? { text("\(architecture).\(key)") }

    public func hasTensor(_ name: String) -> Bool { tensorShape(name) != nil }

    /// The sizes every family writes under the same llama.cpp keys (without the `<arch>.` prefix).
    public static func commonKeys(_ c: ModelConfig) -> [(String, GGUFScalar)] {
        [("context_length", .uint32(UInt32(c.maxPositionEmbeddings))), ("embedding_length", .uint32(UInt32(c.hiddenSize))),
         ("block_count", .uint32(UInt32(c.numHiddenLayers))), ("feed_forward_length", .uint32(UInt32(c.intermediateSize))),
         ("attention.head_count", .uint32(UInt32(c.numAttentionHeads))),
         ("attention.head_count_kv", .uint32(UInt32(c.numKeyValueHeads))),
         ("attention.layer_norm_rms_epsilon", .float32(Float(c.rmsNormEps))), ("rope.freq_base", .float32(Float(c.ropeTheta)))]
    }

    /// The sizes every family stores under the same llama.cpp keys.
    func commonSizes() throws -> (hidden: Int, heads: Int, kvHeads: Int, headDim: Int, layers: Int, ffn: Int, vocab: Int, context: Int) {
        let hidden = try int("embedding_length"), heads = try int("attention.head_count")
        let layers = try int("block_count")
        // Per-layer tables are built from the layer count before the configuration is validated.
        guard layers > 0, layers <= 1 << 24 else { throw bad("\(architecture).block_count", "= \(layers) is out of range") }
        let vocab = try int("vocab_size", default: tokenCount ?? tensorShape("token_embd.weight")?.first ?? 0)
        return (hidden, heads, try int("attention.head_count_kv", default: heads),
                try int("attention.key_length", default: heads > 0 ? hidden / heads : 0),
                layers, try int("feed_forward_length"), vocab, try int("context_length", default: 2048))
    }
}

// MARK: - Hugging Face config decoding

/// Shared pieces of decoding `config.json` with `Decodable`: typed errors naming the key, and the fields whose
/// JSON shape varies across transformers versions.
public enum HFConfigDecoding {
    /// A decoding error as one line naming the key path.
    public static func explain(_ error: Error) -> String {
        func path(_ p: [CodingKey]) -> String { p.map { $0.intValue.map { "[\($0)]" } ?? $0.stringValue }.joined(separator: ".") }
        switch error {
        case DecodingError.keyNotFound(let k, let ctx): return "missing key \(path(ctx.codingPath + [k]))"
        case DecodingError.typeMismatch(let t, let ctx): return "\(path(ctx.codingPath)) is not a \(t)"
        case DecodingError.valueNotFound(let t, let ctx): return "\(path(ctx.codingPath)) is null, expected a \(t)"
        case DecodingError.dataCorrupted(let ctx):
            return ctx.codingPath.isEmpty ? "not valid JSON (\(ctx.debugDescription))" : "\(path(ctx.codingPath)): \(ctx.debugDescription)"
        case let e as TransformerError: return e.description
        default: return "\(error)"
        }
    }

    public static func decode<T: Decodable>(_ type: T.Type, _ data: Data, source: String) throws -> T {
        do { return try JSONDecoder().decode(T.self, from: data) } catch let e as TransformerError { throw e } catch {
            throw TransformerError.invalidConfig(source: source, reason: explain(error))
        }
    }

    /// A size (a count of layers, heads, features or tokens): an integer in 1...2²⁴, so that nothing derived from it
    /// (per-layer tables, tensor shapes) can be asked to allocate the impossible before validation.
    public static func size<K: CodingKey>(_ key: K, in c: KeyedDecodingContainer<K>) throws -> Int {
        let v = try c.decode(Int.self, forKey: key)
        guard v > 0, v <= 1 << 24 else { throw invalid(key, in: c, "\(v) is out of range (1...\(1 << 24))") }
        return v
    }

    public static func optionalSize<K: CodingKey>(_ key: K, in c: KeyedDecodingContainer<K>) throws -> Int? {
        guard c.contains(key), try c.decodeNil(forKey: key) == false else { return nil }
        return try size(key, in: c)
    }

    /// An error for a key with a bad value, from inside `init(from:)`.
    public static func invalid<K: CodingKey>(_ key: K, in c: KeyedDecodingContainer<K>, _ why: String) -> DecodingError {
        .dataCorruptedError(forKey: key, in: c, debugDescription: why)
    }

    /// `eos_token_id`: one id or a list.
    public struct TokenIds: Decodable, Sendable {
        public var ids: [Int]
        public init(from decoder: Decoder) throws {
            let c = try decoder.singleValueContainer()
            if c.decodeNil() { ids = [] } else if let one = try? c.decode(Int.self) { ids = [one] } else { ids = try c.decode([Int].self) }
        }
    }

    /// One `rope_scaling` / `rope_parameters` object: its type, optional base and scaling factors.
    public struct Rope: Decodable, Sendable {
        public var ropeType: String
        public var theta: Double?
        public var scaling: ModelConfig.RopeScaling?

        enum Keys: String, CodingKey {
            case rope_type, type, rope_theta, factor, low_freq_factor, high_freq_factor, original_max_position_embeddings
        }

        public init(from decoder: Decoder) throws {
            let c = try decoder.container(keyedBy: Keys.self)
            ropeType = try c.decodeIfPresent(String.self, forKey: .rope_type) ?? c.decodeIfPresent(String.self, forKey: .type) ?? "default"
            theta = try c.decodeIfPresent(Double.self, forKey: .rope_theta)
            switch ropeType {
            case "default": scaling = nil
            case "linear":
                scaling = .init(ropeType: "linear", factor: try c.decode(Double.self, forKey: .factor))
            case "llama3":
                let original = try c.decode(Double.self, forKey: .original_max_position_embeddings)
                guard let o = Int(exactly: original.rounded()), o > 0, o <= 1 << 24 else {
                    throw invalid(Keys.original_max_position_embeddings, in: c, "\(original) is out of range")
                }
                scaling = .init(ropeType: "llama3", factor: try c.decode(Double.self, forKey: .factor),
                                lowFreqFactor: try c.decode(Double.self, forKey: .low_freq_factor),
                                highFreqFactor: try c.decode(Double.self, forKey: .high_freq_factor),
                                originalMaxPositionEmbeddings: o)
            default:
                throw invalid(Keys.rope_type, in: c, "rope type '\(ropeType)' is not supported (default, linear, llama3)")
            }
        }
    }
}

public extension ModelConfig {
    /// `config.json` for this model: the description's architecture keys plus what every family shares.
    func hfConfigData(dtype: String) throws -> Data {
        var json = architecture.hfConfigJSON(self)
        json["torch_dtype"] = dtype
        json["use_cache"] = true
        json["initializer_range"] = 0.02
        if let b = bosTokenId { json["bos_token_id"] = b }
        if eosTokenIds.count == 1 { json["eos_token_id"] = eosTokenIds[0] } else if !eosTokenIds.isEmpty { json["eos_token_id"] = eosTokenIds }
        return try JSONSerialization.data(withJSONObject: json, options: [.prettyPrinted, .sortedKeys])
    }
}
