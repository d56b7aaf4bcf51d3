import Foundation

/// Mistral (`MistralForCausalLM`): Llama's layers, with every layer attending over a sliding window of
/// `sliding_window` keys when the config sets one (transformers then builds a sliding mask for all layers).
public enum Mistral: Architecture {
    public static let modelTypes = ["mistral"]
    /// llama.cpp writes Mistral 7B as `llama`; a few converters wrote `mistral`.
    public static let ggufArchitectures = ["mistral"]
    public static let ggufPermutesQK = true
    public static var tensorNames: TensorNames { Llama.tensorNames }

    public static func config(fromHF data: Data, source: String) throws -> ModelConfig {
        let f = try HFConfigDecoding.decode(LlamaFamilyConfig.self, data, source: source)
        let sliding = f.slidingWindow.map { _ in [AttentionKind](repeating: .sliding, count: f.numHiddenLayers) }
        return f.modelConfig(modelType: "mistral", sliding: sliding)
    }

    /// GGUF carries no window for Mistral; llama.cpp runs it with full attention, and so do we.
    public static func config(fromGGUF h: GGUFHeader) throws -> ModelConfig {
        try LlamaFamilyConfig.fromGGUF(h, modelType: "mistral")
    }

    public static func hfConfigJSON(_ c: ModelConfig) -> [String: Any] {
        var json = LlamaFamilyConfig.json(c, className: "MistralForCausalLM")
        json["layer_types"] = nil   // Mistral's config has no layer_types; the window alone says all layers slide
        json["sliding_window"] = c.slidingWindow ?? NSNull()
        return json
    }

    public static func ggufMetadata(_ c: ModelConfig) -> (architecture: String, keys: [(String, GGUFScalar)]) {
        ("llama", LlamaFamilyConfig.ggufKeys(c, arch: "llama"))
    }
}
