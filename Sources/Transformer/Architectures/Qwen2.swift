import Foundation

/// Qwen2 and Qwen2.5 (`Qwen2ForCausalLM`; GGUF `qwen2`): Llama's layers with q/k/v biases always present, and
/// no Q/K row reordering in GGUF (llama.cpp runs Qwen2 with NEOX-style RoPE, HF's own layout).
public enum Qwen2: Architecture {
    public static let modelTypes = ["qwen2"]
    public static let ggufArchitectures = ["qwen2"]
    public static var tensorNames: TensorNames { Llama.tensorNames }

    /// With `use_sliding_window`, layers from `max_window_layers` on slide (transformers' rule).
    public static func config(fromHF data: Data, source: String) throws -> ModelConfig {
        let f = try HFConfigDecoding.decode(LlamaFamilyConfig.self, data, source: source)
        var sliding: [AttentionKind]?
        if f.useSlidingWindow == true, f.slidingWindow != nil {
            let first = f.maxWindowLayers ?? f.numHiddenLayers
            sliding = (0..<f.numHiddenLayers).map { $0 >= first ? .sliding : .full }
        }
        return f.modelConfig(modelType: "qwen2", attentionBias: true, sliding: sliding)
    }

    public static func config(fromGGUF h: GGUFHeader) throws -> ModelConfig {
        try LlamaFamilyConfig.fromGGUF(h, modelType: "qwen2", attentionBias: true)
    }

    public static func hfConfigJSON(_ c: ModelConfig) -> [String: Any] {
        var json = LlamaFamilyConfig.json(c, className: "Qwen2ForCausalLM", biasKey: false)
        json["use_sliding_window"] = c.layerTypes.contains(.sliding)
        if let first = c.layerTypes.firstIndex(of: .sliding) { json["max_window_layers"] = first }
        return json
    }

    public static func ggufMetadata(_ c: ModelConfig) -> (architecture: String, keys: [(String, GGUFScalar)]) {
        ("qwen2", LlamaFamilyConfig.ggufKeys(c, arch: "qwen2"))
    }
}
