import Foundation
import ModelFiles
import Tokenization
import Transformer

/// Loads a Hugging Face model folder: config.json, model.safetensors (or shards with an index),
/// tokenizer.json, tokenizer_config.json, and the chat template from chat_template.jinja or the config.
enum HFModelLoader {
    static func load(folder: String) throws -> LanguageModel {
        let dir = URL(fileURLWithPath: folder)
        let configPath = dir.appendingPathComponent("config.json").path
        guard let configData = FileManager.default.contents(atPath: configPath) else {
            throw RuntimeError.missingFile(path: configPath)
        }
        let config: ModelConfig
        do { config = try Architectures.config(fromHF: configData, source: configPath) } catch let e as TransformerError {
            switch e {
            case .unsupported(_, let reason): throw RuntimeError.unsupported(path: configPath, reason: reason)
            default: throw RuntimeError.badFile(path: configPath, reason: e.description)
            }
        }
        let tensors = try SafetensorsCollection(folder: folder)
        let stored = tensors.tensorNames.reduce(0) { $0 &+ (tensors.info($1)?.elementCount ?? 0) }
        guard let needed = config.parameterCount, needed <= stored else {
            throw RuntimeError.badFile(path: configPath, reason: "config.json describes \(config.parameterCount.map(String.init) ?? "too many") parameters but the safetensors store \(stored)")
        }
        let weights = ModelWeights(config: config)
        var typeCounts: [String: Int] = [:]
        for (name, target) in weights.namedParameters {
            guard let info = tensors.info(name) else {
                throw RuntimeError.badFile(path: folder, reason: "missing tensor '\(name)'")
            }
            guard info.shape == target.shape else {
                throw RuntimeError.badFile(path: folder, reason: "tensor '\(name)' has shape \(info.shape), expected \(target.shape)")
            }
            typeCounts[info.dtype.rawValue, default: 0] += 1
            try tensors.decodeFloats(name, into: target.buffer)
        }
        let tokPath = dir.appendingPathComponent("tokenizer.json").path
        guard let tokData = FileManager.default.contents(atPath: tokPath) else { throw RuntimeError.missingFile(path: tokPath) }
        let tokConfigPath = dir.appendingPathComponent("tokenizer_config.json").path
        let tokConfig = FileManager.default.contents(atPath: tokConfigPath)
        let tokenizer = try Tokenizer.fromTokenizerJSON(tokData, config: tokConfig, source: tokPath)

        var template: String?
        var templateSource = "none"
        let jinjaPath = dir.appendingPathComponent("chat_template.jinja").path
        if let data = FileManager.default.contents(atPath: jinjaPath) {
            guard let text = String(data: data, encoding: .utf8) else {
                throw RuntimeError.badFile(path: jinjaPath, reason: "not UTF-8 text")
            }
            template = text; templateSource = "chat_template.jinja"
        } else if let tokConfig,
                  let json = (try? JSONSerialization.jsonObject(with: tokConfig)) as? [String: Any] {
            if let t = json["chat_template"] as? String {
                template = t; templateSource = "tokenizer_config.json"
            } else if let list = json["chat_template"] as? [[String: Any]] {
                template = list.first { ($0["name"] as? String) == "default" }?["template"] as? String
                templateSource = "tokenizer_config.json (default)"
            }
        }
        let name = dir.lastPathComponent
        return try LanguageModel(path: folder, format: .safetensors, displayName: name, weights: weights,
                                 tokenizer: tokenizer, chatTemplateText: template, chatTemplateSource: templateSource,
                                 tensorTypeCounts: typeCounts)
    }
}
