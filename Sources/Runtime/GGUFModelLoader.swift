import Foundation
import ModelFiles
import Tokenization
import Transformer

/// Loads a llama.cpp GGUF file: architecture from metadata, weights dequantised to f32 in Hugging Face
/// layout, tokenizer from `tokenizer.ggml.*`, chat template from `tokenizer.chat_template`.
enum GGUFModelLoader {
    static func load(path: String) throws -> LanguageModel {
        let file = try GGUFFile(path: path)
        let config = try config(of: file)
        let arch = config.architecture
        let stored = file.tensorInfos.reduce(0) { $0 &+ $1.elementCount }
        guard let needed = config.parameterCount, needed <= stored else {
            throw RuntimeError.badFile(path: path, reason: "the metadata describes \(config.parameterCount.map(String.init) ?? "too many") parameters but the file stores \(stored)")
        }
        let weights = ModelWeights(config: config)
        let byName = Dictionary(uniqueKeysWithValues: weights.namedParameters.map { ($0.0, $0.1) })
        var filled = Set<String>()
        var typeCounts: [String: Int] = [:]
        for info in file.tensorInfos {
            typeCounts[info.type.name, default: 0] += 1
            guard let hfName = arch.tensorNames.hfName(forGGUF: info.name) else { continue }
            guard let target = byName[hfName] else {
                if hfName == arch.tensorNames.lmHead.hf { continue }   // tied model that still ships output.weight
                throw RuntimeError.badFile(path: path, reason: "tensor '\(info.name)' does not fit a \(config.numHiddenLayers)-layer \(config.modelType) model")
            }
            guard info.shape == target.shape else {
                throw RuntimeError.badFile(path: path, reason: "tensor '\(info.name)' has shape \(info.shape), expected \(target.shape)")
            }
            try file.decodeFloats(info.name, into: target.buffer)
            let role = arch.tensorNames.role(ofHF: hfName)
            if arch.ggufPermutesQK {
                // llama.cpp permuted Q/K rows for its adjacent-pair RoPE; undo it for HF's rotate_half.
                if role == .qProj || role == .qBias {
                    GGUFLayout.unpermuteRows(target.pointer, rows: config.qDim, columns: target.count / config.qDim,
                                             heads: config.numAttentionHeads)
                } else if role == .kProj || role == .kBias {
                    GGUFLayout.unpermuteRows(target.pointer, rows: config.kvDim, columns: target.count / config.kvDim,
                                             heads: config.numKeyValueHeads)
                }
            }
            if arch.ggufNormShift != 0, hfName.hasSuffix("norm.weight") {
                // Stored as w + shift for llama.cpp's w·x̂; HF keeps w (transformers subtracts it the same way, in f32).
                let p = target.pointer, shift = arch.ggufNormShift
                for i in 0..<target.count { p[i] -= shift }
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

    /// The model configuration, read by the architecture description `general.architecture` names.
    static func config(of file: GGUFFile) throws -> ModelConfig {
        let path = file.path
        guard let arch = file.metadata["general.architecture"]?.stringValue else {
            throw RuntimeError.badFile(path: path, reason: "missing metadata key general.architecture")
        }
        let header = GGUFHeader(
            source: path, architecture: arch,
            integer: { key in file.metadata[key].map { $0.intValue } },
            real: { key in file.metadata[key].map { $0.doubleValue } },
            text: { key in file.metadata[key]?.stringValue },
            tensorShape: { file.tensorInfo($0)?.shape },
            tokenCount: file.metadata["tokenizer.ggml.tokens"]?.arrayValue?.count)
        do { return try Architectures.config(fromGGUF: header) } catch let e as TransformerError {
            switch e {
            case .unsupported(_, let reason): throw RuntimeError.unsupported(path: path, reason: reason)
            default: throw RuntimeError.badFile(path: path, reason: e.description)
            }
        }
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
            addSpacePrefix: m["tokenizer.ggml.add_space_prefix"]?.boolValue,
            architecture: m["general.architecture"]?.stringValue)
    }
}
