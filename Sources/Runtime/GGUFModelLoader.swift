import Foundation
import ModelFiles
import Tokenization
import Transformer

/// Loads a llama.cpp GGUF file: architecture from metadata, weights dequantised to f32 in Hugging Face
/// layout, tokenizer from `tokenizer.ggml.*`, chat template from `tokenizer.chat_template`.
enum GGUFModelLoader {
    static let architectures: Set<String> = ["llama", "qwen2", "mistral"]

    static func load(path: String) throws -> LanguageModel {
        let file = try GGUFFile(path: path)
        let config = try config(of: file)
        let stored = file.tensorInfos.reduce(0) { $0 &+ $1.elementCount }
        guard let needed = config.parameterCount, needed <= stored else {
            throw RuntimeError.badFile(path: path, reason: "the metadata describes \(config.parameterCount.map(String.init) ?? "too many") parameters but the file stores \(stored)")
        }
        let weights = LlamaWeights(config: config)
        let byName = Dictionary(uniqueKeysWithValues: weights.namedParameters.map { ($0.0, $0.1) })
        var filled = Set<String>()
        var typeCounts: [String: Int] = [:]
        for info in file.tensorInfos {
            typeCounts[info.type.name, default: 0] += 1
            guard let hfName = GGUFLayout.hfName(forGGUF: info.name) else { continue }
            guard let target = byName[hfName] else {
                if hfName == "lm_head.weight" { continue }   // tied model that still ships output.weight
                throw RuntimeError.badFile(path: path, reason: "tensor '\(info.name)' does not fit a \(config.numHiddenLayers)-layer \(config.modelType) model")
            }
            guard info.shape == target.shape else {
                throw RuntimeError.badFile(path: path, reason: "tensor '\(info.name)' has shape \(info.shape), expected \(target.shape)")
            }
            try file.decodeFloats(info.name, into: target.buffer)
            if config.modelType != "qwen2" {
                // llama.cpp permuted Q/K rows for its adjacent-pair RoPE; undo it for HF's rotate_half.
                if hfName.hasSuffix("self_attn.q_proj.weight") || hfName.hasSuffix("self_attn.q_proj.bias") {
                    GGUFLayout.unpermuteRows(target.pointer, rows: config.qDim, columns: target.count / config.qDim,
                                             heads: config.numAttentionHeads)
                } else if hfName.hasSuffix("self_attn.k_proj.weight") || hfName.hasSuffix("self_attn.k_proj.bias") {
                    GGUFLayout.unpermuteRows(target.pointer, rows: config.kvDim, columns: target.count / config.kvDim,
                                             heads: config.numKeyValueHeads)
                }
            }
            filled.insert(hfName)
        }
        for (name, _) in weights.namedParameters where !filled.contains(name) {
            throw RuntimeError.badFile(path: path, reason: "missing tensor for '\(name)'")
        }
        let tokenizer = try Tokenizer.fromGGUF(tokenizerMetadata(file), source: path)
        let name = file.metadata["general.name"]?.stringValue ?? URL(fileURLWithPath: path).lastPathComponent
        return try LanguageModel(path: path, format: .gguf, displayName: name, weights: weights, tokenizer: tokenizer,
                                 chatTemplateText: file.metadata["tokenizer.chat_template"]?.stringValue,
                                 chatTemplateSource: "GGUF tokenizer.chat_template", tensorTypeCounts: typeCounts)
    }

    static func config(of file: GGUFFile) throws -> LlamaConfig {
        let path = file.path
        guard let arch = file.metadata["general.architecture"]?.stringValue else {
            throw RuntimeError.badFile(path: path, reason: "missing metadata key general.architecture")
        }
        guard architectures.contains(arch) else {
            throw RuntimeError.unsupported(path: path, reason: "architecture '\(arch)' (supported: \(architectures.sorted().joined(separator: ", ")))")
        }
        func int(_ key: String, default d: Int? = nil) throws -> Int {
            if let v = file.metadata["\(arch).\(key)"] {
                guard let i = v.intValue else { throw RuntimeError.badFile(path: path, reason: "metadata \(arch).\(key) is not an integer") }
                return i
            }
            if let d { return d }
            throw RuntimeError.badFile(path: path, reason: "missing metadata key \(arch).\(key)")
        }
        func double(_ key: String, default d: Double) throws -> Double {
            guard let v = file.metadata["\(arch).\(key)"] else { return d }
            guard let x = v.doubleValue else { throw RuntimeError.badFile(path: path, reason: "metadata \(arch).\(key) is not a number") }
            return x
        }
        if file.tensorInfo("rope_freqs.weight") != nil {
            throw RuntimeError.unsupported(path: path, reason: "per-frequency RoPE factors (rope_freqs.weight, Llama 3.1 scaling in GGUF); load the Hugging Face folder instead")
        }
        let hidden = try int("embedding_length")
        let heads = try int("attention.head_count")
        let tokens = file.metadata["tokenizer.ggml.tokens"]?.arrayValue?.count
        let vocab = try int("vocab_size", default: tokens ?? file.tensorInfo("token_embd.weight")?.shape.first ?? 0)
        let tied = file.tensorInfo("output.weight") == nil
        let eos = file.metadata["tokenizer.ggml.eos_token_id"]?.intValue
        var config = LlamaConfig(
            modelType: arch == "qwen2" ? "qwen2" : "llama",
            vocabSize: vocab, hiddenSize: hidden, intermediateSize: try int("feed_forward_length"),
            numHiddenLayers: try int("block_count"), numAttentionHeads: heads,
            numKeyValueHeads: try int("attention.head_count_kv", default: heads),
            headDim: try int("attention.key_length", default: heads > 0 ? hidden / heads : 0),
            rmsNormEps: try double("attention.layer_norm_rms_epsilon", default: 1e-5),
            ropeTheta: try double("rope.freq_base", default: 10000),
            maxPositionEmbeddings: try int("context_length", default: 2048),
            tieWordEmbeddings: tied, attentionBias: file.tensorInfo("blk.0.attn_q.bias") != nil,
            bosTokenId: file.metadata["tokenizer.ggml.bos_token_id"]?.intValue, eosTokenIds: eos.map { [$0] } ?? [])
        if config.modelType == "qwen2" { config.attentionBias = true }
        do { try config.validate(source: path) } catch let e as TransformerError {
            throw RuntimeError.badFile(path: path, reason: e.description)
        }
        return config
    }

    static func tokenizerMetadata(_ file: GGUFFile) throws -> GGUFTokenizerMetadata {
        let m = file.metadata
        guard let model = m["tokenizer.ggml.model"]?.stringValue else {
            throw RuntimeError.badFile(path: file.path, reason: "missing metadata key tokenizer.ggml.model")
        }
        guard let tokens = m["tokenizer.ggml.tokens"]?.stringArray else {
            throw RuntimeError.badFile(path: file.path, reason: "missing or non-string tokenizer.ggml.tokens")
        }
        return GGUFTokenizerMetadata(
            model: model, pre: m["tokenizer.ggml.pre"]?.stringValue, tokens: tokens,
            tokenTypes: m["tokenizer.ggml.token_type"]?.intArray, merges: m["tokenizer.ggml.merges"]?.stringArray,
            scores: m["tokenizer.ggml.scores"]?.floatArray,
            bosTokenId: m["tokenizer.ggml.bos_token_id"]?.intValue, eosTokenId: m["tokenizer.ggml.eos_token_id"]?.intValue,
            unknownTokenId: m["tokenizer.ggml.unknown_token_id"]?.intValue,
            paddingTokenId: m["tokenizer.ggml.padding_token_id"]?.intValue,
            addBOS: m["tokenizer.ggml.add_bos_token"]?.boolValue, addEOS: m["tokenizer.ggml.add_eos_token"]?.boolValue,
            addSpacePrefix: m["tokenizer.ggml.add_space_prefix"]?.boolValue)
    }
}
