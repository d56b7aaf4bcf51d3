import Foundation
import Transformer

/// Maps a Hugging Face `config.json` to `LlamaConfig` and back.
///
/// Only the Llama family is accepted (`llama`, `mistral`, `qwen2`); anything else is refused with the
/// model type named, rather than silently run with the wrong architecture.
public enum HFConfig {
    public static let supportedModelTypes: Set<String> = ["llama", "mistral", "qwen2"]

    public static func parse(_ data: Data, source: String) throws -> LlamaConfig {
        let any: Any
        do { any = try JSONSerialization.jsonObject(with: data) } catch {
            throw RuntimeError.badFile(path: source, reason: "config.json is not valid JSON (\(error.localizedDescription))")
        }
        guard let json = any as? [String: Any] else {
            throw RuntimeError.badFile(path: source, reason: "config.json is not a JSON object")
        }
        func int(_ key: String, default d: Int? = nil) throws -> Int {
            if let v = json[key] as? NSNumber {
                let dv = v.doubleValue
                guard dv.rounded() == dv, abs(dv) < 1e15 else {
                    throw RuntimeError.badFile(path: source, reason: "\(key) = \(v) is not an integer")
                }
                return Int(dv)
            }
            if let d { return d }
            throw RuntimeError.badFile(path: source, reason: "missing integer field \(key)")
        }
        func double(_ key: String, default d: Double) throws -> Double {
            if json[key] == nil || json[key] is NSNull { return d }
            guard let v = json[key] as? NSNumber else {
                throw RuntimeError.badFile(path: source, reason: "\(key) is not a number")
            }
            return v.doubleValue
        }
        let modelType = (json["model_type"] as? String) ?? ""
        guard supportedModelTypes.contains(modelType) else {
            throw RuntimeError.unsupported(path: source,
                reason: "model_type '\(modelType)' (supported: \(supportedModelTypes.sorted().joined(separator: ", ")))")
        }
        if let act = json["hidden_act"] as? String, act != "silu" {
            throw RuntimeError.unsupported(path: source, reason: "hidden_act '\(act)' (only silu)")
        }
        let hidden = try int("hidden_size")
        let heads = try int("num_attention_heads")
        let kvHeads = try int("num_key_value_heads", default: heads)
        var headDim = hidden / max(1, heads)
        if let hd = json["head_dim"] as? NSNumber { headDim = hd.intValue }
        var scaling: LlamaConfig.RopeScaling?
        let ropeDict = (json["rope_scaling"] as? [String: Any]) ?? (json["rope_parameters"] as? [String: Any])
        var ropeTheta = try double("rope_theta", default: 10000)
        if let r = ropeDict {
            if let t = r["rope_theta"] as? NSNumber { ropeTheta = t.doubleValue }
            let type = (r["rope_type"] as? String) ?? (r["type"] as? String) ?? "default"
            switch type {
            case "default": break
            case "llama3":
                func f(_ k: String) throws -> Double {
                    guard let v = r[k] as? NSNumber else {
                        throw RuntimeError.badFile(path: source, reason: "rope_scaling.\(k) missing for llama3 scaling")
                    }
                    return v.doubleValue
                }
                scaling = .init(ropeType: "llama3", factor: try f("factor"), lowFreqFactor: try f("low_freq_factor"),
                                highFreqFactor: try f("high_freq_factor"),
                                originalMaxPositionEmbeddings: try {
                                    let v = try f("original_max_position_embeddings")
                                    guard let i = Int(exactly: v.rounded()), i > 0 else {
                                        throw RuntimeError.badFile(path: source, reason: "rope_scaling.original_max_position_embeddings = \(v) is out of range")
                                    }
                                    return i
                                }())
            default:
                throw RuntimeError.unsupported(path: source, reason: "rope_scaling type '\(type)'")
            }
        }
        var eos: [Int] = []
        if let e = json["eos_token_id"] as? NSNumber { eos = [e.intValue] }
        if let e = json["eos_token_id"] as? [NSNumber] { eos = e.map(\.intValue) }
        let bias: Bool
        if modelType == "qwen2" { bias = true } else { bias = (json["attention_bias"] as? Bool) ?? false }
        if (json["mlp_bias"] as? Bool) == true {
            throw RuntimeError.unsupported(path: source, reason: "mlp_bias = true")
        }
        let config = LlamaConfig(
            modelType: modelType, vocabSize: try int("vocab_size"), hiddenSize: hidden,
            intermediateSize: try int("intermediate_size"), numHiddenLayers: try int("num_hidden_layers"),
            numAttentionHeads: heads, numKeyValueHeads: kvHeads, headDim: headDim,
            rmsNormEps: try double("rms_norm_eps", default: 1e-6), ropeTheta: ropeTheta, ropeScaling: scaling,
            maxPositionEmbeddings: try int("max_position_embeddings", default: 2048),
            tieWordEmbeddings: (json["tie_word_embeddings"] as? Bool) ?? false,
            attentionBias: bias, bosTokenId: (json["bos_token_id"] as? NSNumber)?.intValue, eosTokenIds: eos)
        do { try config.validate(source: source) } catch let e as TransformerError {
            throw RuntimeError.badFile(path: source, reason: e.description)
        }
        return config
    }

    /// A `config.json` that transformers' AutoConfig/AutoModelForCausalLM load as the same architecture.
    public static func serialize(_ c: LlamaConfig, dtype: String) throws -> Data {
        let arch: String
        switch c.modelType {
        case "qwen2": arch = "Qwen2ForCausalLM"
        case "mistral": arch = "MistralForCausalLM"
        default: arch = "LlamaForCausalLM"
        }
        var json: [String: Any] = [
            "architectures": [arch], "model_type": c.modelType,
            "vocab_size": c.vocabSize, "hidden_size": c.hiddenSize, "intermediate_size": c.intermediateSize,
            "num_hidden_layers": c.numHiddenLayers, "num_attention_heads": c.numAttentionHeads,
            "num_key_value_heads": c.numKeyValueHeads, "head_dim": c.headDim, "hidden_act": "silu",
            "rms_norm_eps": c.rmsNormEps, "rope_theta": c.ropeTheta,
            "max_position_embeddings": c.maxPositionEmbeddings, "tie_word_embeddings": c.tieWordEmbeddings,
            "torch_dtype": dtype, "use_cache": true, "initializer_range": 0.02,
        ]
        if c.modelType != "qwen2" { json["attention_bias"] = c.attentionBias; json["mlp_bias"] = false }
        if let b = c.bosTokenId { json["bos_token_id"] = b }
        if c.eosTokenIds.count == 1 { json["eos_token_id"] = c.eosTokenIds[0] }
        else if !c.eosTokenIds.isEmpty { json["eos_token_id"] = c.eosTokenIds }
        if let s = c.ropeScaling {
            json["rope_scaling"] = ["rope_type": s.ropeType, "factor": s.factor, "low_freq_factor": s.lowFreqFactor,
                                    "high_freq_factor": s.highFreqFactor,
                                    "original_max_position_embeddings": s.originalMaxPositionEmbeddings]
        }
        return try JSONSerialization.data(withJSONObject: json, options: [.prettyPrinted, .sortedKeys])
    }
}
