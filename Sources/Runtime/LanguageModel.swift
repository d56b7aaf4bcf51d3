import Foundation
import ModelFiles
import Tensors
import Tokenization
import Transformer

/// The weights file format a model came from.
public enum ModelFormat: String, Sendable { case gguf, safetensors }

public enum ExportDType: String, Sendable { case f32, bf16 }

/// A runnable model: weights in an inference engine, its tokenizer and its chat template, loaded from a
/// GGUF file or a Hugging Face folder. This is what every command works with.
public final class LanguageModel: @unchecked Sendable {
    public let path: String
    public let format: ModelFormat
    public let displayName: String
    public let config: ModelConfig
    public let engine: InferenceModel
    public let tokenizer: Tokenizer
    public let chatTemplate: ChatTemplate?
    public let chatTemplateText: String
    public let chatTemplateSource: String
    /// Tokens that end a generation: EOS ids and the template's end-of-turn token.
    public let stopTokenIds: Set<Int>
    /// Storage types of the source tensors (e.g. "Q4_1": 210), for `inspect`.
    public let tensorTypeCounts: [String: Int]

    public var weights: ModelWeights { engine.weights }

    init(path: String, format: ModelFormat, displayName: String, weights: ModelWeights, tokenizer: Tokenizer,
         chatTemplateText: String?, chatTemplateSource: String, tensorTypeCounts: [String: Int]) throws {
        self.path = path; self.format = format; self.displayName = displayName
        self.config = weights.config
        self.engine = try InferenceModel(weights: weights)
        self.tokenizer = tokenizer
        self.tensorTypeCounts = tensorTypeCounts
        if let text = chatTemplateText, !text.isEmpty {
            self.chatTemplate = try ChatTemplate(source: text, name: "\(path) chat template")
            self.chatTemplateText = text
            self.chatTemplateSource = chatTemplateSource
        } else {
            self.chatTemplate = nil
            self.chatTemplateText = ""
            self.chatTemplateSource = "none (plain ChatML fallback)"
        }
        var stops = Set(weights.config.eosTokenIds)
        if let e = tokenizer.eosTokenId { stops.insert(e) }
        for t in ["<|im_end|>", "<|eot_id|>", "<|end_of_text|>", "<|endoftext|>", "<|end|>", "</s>", "<end_of_turn>"] {
            if let id = tokenizer.id(of: t) { stops.insert(id) }
        }
        self.stopTokenIds = stops
    }

    /// Loads a `.gguf` file or a Hugging Face model folder.
    public static func load(_ path: String) throws -> LanguageModel {
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDir) else {
            throw RuntimeError.missingFile(path: path)
        }
        if isDir.boolValue { return try HFModelLoader.load(folder: path) }
        return try GGUFModelLoader.load(path: path)
    }

    /// Special tokens by role, for `inspect`.
    public var specialTokenSummary: [String: String] {
        var out: [String: String] = [:]
        if let t = tokenizer.bosToken { out["bos"] = "\(t) (\(tokenizer.bosTokenId.map(String.init) ?? "?"))" }
        if let t = tokenizer.eosToken { out["eos"] = "\(t) (\(tokenizer.eosTokenId.map(String.init) ?? "?"))" }
        if let t = tokenizer.padToken { out["pad"] = "\(t) (\(tokenizer.padTokenId.map(String.init) ?? "?"))" }
        return out
    }

    // MARK: Chat formatting

    /// The chat-templated text of `messages`, exactly as transformers' `apply_chat_template(tokenize=False)`.
    public func renderChat(_ messages: [ChatMessage], addGenerationPrompt: Bool) throws -> String {
        guard let chatTemplate else {
            // No template in the model: plain ChatML, the most common convention among small chat models.
            var s = ""
            for m in messages { s += "<|im_start|>\(m.role)\n\(m.content)<|im_end|>\n" }
            if addGenerationPrompt { s += "<|im_start|>assistant\n" }
            return s
        }
        return try chatTemplate.render(messages: messages, addGenerationPrompt: addGenerationPrompt,
                                       bosToken: tokenizer.bosToken, eosToken: tokenizer.eosToken)
    }

    /// Ids of a templated conversation; the template supplies special tokens, so none are added again
    /// (transformers' `apply_chat_template(tokenize=True)`).
    public func encodeChat(_ messages: [ChatMessage], addGenerationPrompt: Bool) throws -> [Int] {
        tokenizer.encode(try renderChat(messages, addGenerationPrompt: addGenerationPrompt), addSpecialTokens: false)
    }

    public func encodeChat(user: String, system: String? = nil) throws -> [Int] {
        var messages: [ChatMessage] = []
        if let system { messages.append(ChatMessage(role: "system", content: system)) }
        messages.append(ChatMessage(role: "user", content: user))
        return try encodeChat(messages, addGenerationPrompt: true)
    }

    /// TRL's conversational convention: prompt ids = template([user]) with the generation prompt; full ids =
    /// template([user, assistant]); the completion is the full ids after the prompt ids.
    public func encodeCompletionPair(prompt: String, completion: String, system: String? = nil) throws -> (ids: [Int], start: Int) {
        var messages: [ChatMessage] = []
        if let system { messages.append(ChatMessage(role: "system", content: system)) }
        messages.append(ChatMessage(role: "user", content: prompt))
        return try encodeCompletion(prompt: messages, completion: [ChatMessage(role: "assistant", content: completion)])
    }

    /// The same for any conversation: prompt ids = template(prompt) with the generation prompt, full ids =
    /// template(prompt + completion) (TRL's conversational preference format, a system turn or earlier turns allowed).
    public func encodeCompletion(prompt: [ChatMessage], completion: [ChatMessage]) throws -> (ids: [Int], start: Int) {
        let promptIds = try encodeChat(prompt, addGenerationPrompt: true)
        let full = try encodeChat(prompt + completion, addGenerationPrompt: false)
        guard full.count > promptIds.count else {
            let last = prompt.last?.content.prefix(40) ?? ""
            throw RuntimeError.invalidArgument("the templated completion adds no tokens after the prompt (prompt \"\(last)\")")
        }
        return (full, promptIds.count)
    }

    /// The text of generated ids, without the trailing stop token and without special tokens.
    public func decodeCompletion(_ ids: [Int]) -> String {
        var ids = ids
        if let last = ids.last, stopTokenIds.contains(last) { ids.removeLast() }
        return tokenizer.decode(ids, skipSpecialTokens: true)
    }

    // MARK: Running

    public func generate(prompts: [[Int]], maxNewTokens: Int, sampling: Sampling = .greedy,
                         ablation: NeuronSet? = nil,
                         stopWhen: ((_ sequence: Int, _ output: [Int]) -> Bool)? = nil) throws -> [[Int]] {
        try engine.generate(prompts: prompts, maxNewTokens: maxNewTokens, sampling: sampling,
                            stopTokens: stopTokenIds, ablation: ablation, stopWhen: stopWhen)
    }

    public func logprobs(_ pairs: [(ids: [Int], start: Int)], ablation: NeuronSet? = nil) throws -> [(logprob: Double, tokens: Int)] {
        try engine.sequenceLogProbs(sequences: pairs.map(\.ids), completionStarts: pairs.map(\.start), ablation: ablation)
    }

    /// `logprobs` with the prompts' shared tokens (a few-shot block, a question with several choices) computed once.
    public func logprobsSharingPrefixes(_ pairs: [(ids: [Int], start: Int)], ablation: NeuronSet? = nil) throws -> [(logprob: Double, tokens: Int)] {
        try engine.sharedPrefixLogProbs(sequences: pairs.map(\.ids), completionStarts: pairs.map(\.start), ablation: ablation)
    }

    /// `logprobs` with each prompt's keys/values kept in `prefixes` for later calls (intact weights only).
    public func logprobs(_ pairs: [(ids: [Int], start: Int)], reusingPrompts prefixes: PrefixCache) throws -> [(logprob: Double, tokens: Int)] {
        try engine.completionLogProbs(sequences: pairs.map(\.ids), completionStarts: pairs.map(\.start), prefixes: prefixes)
    }

    // MARK: Export

    /// Writes a Hugging Face folder (config.json, model.safetensors, tokenizer files, chat template), atomically.
    public func exportHF(to dir: String, dtype: ExportDType, weights override: ModelWeights? = nil,
                         extraFiles: [String: Data] = [:]) throws {
        let w = override ?? weights
        // A NaN/Inf weight would poison every later load; refuse before touching the target folder.
        for (name, t) in w.namedParameters {
            if let i = NumericalError.firstNonFinite(UnsafeBufferPointer(t.buffer)) {
                throw NumericalError.nonFiniteWeight(path: dir, tensor: name, index: i, value: t.buffer[i])
            }
        }
        try AtomicFile.writeFolder(dir) { tmp in
            try w.config.hfConfigData(dtype: dtype == .f32 ? "float32" : "bfloat16")
                .write(to: URL(fileURLWithPath: tmp + "/config.json"))
            var gen: [String: Any] = ["do_sample": false]
            if let b = config.bosTokenId ?? tokenizer.bosTokenId { gen["bos_token_id"] = b }
            let eos = config.eosTokenIds.isEmpty ? (tokenizer.eosTokenId.map { [$0] } ?? []) : config.eosTokenIds
            if !eos.isEmpty { gen["eos_token_id"] = eos.count == 1 ? eos[0] as Any : eos as Any }
            try JSONSerialization.data(withJSONObject: gen, options: [.prettyPrinted, .sortedKeys])
                .write(to: URL(fileURLWithPath: tmp + "/generation_config.json"))
            let tensors = w.namedParameters.map { (name: $0.0, shape: $0.1.shape,
                                                   values: UnsafeBufferPointer($0.1.buffer)) }
            try SafetensorsWriter.write(path: tmp + "/model.safetensors", tensors: tensors,
                                        dtype: dtype == .f32 ? .f32 : .bf16, metadata: ["format": "pt"])
            try tokenizer.tokenizerJSON().write(to: URL(fileURLWithPath: tmp + "/tokenizer.json"))
            try tokenizer.tokenizerConfigJSON(chatTemplate: chatTemplate == nil ? nil : chatTemplateText)
                .write(to: URL(fileURLWithPath: tmp + "/tokenizer_config.json"))
            if chatTemplate != nil {
                try Data(chatTemplateText.utf8).write(to: URL(fileURLWithPath: tmp + "/chat_template.jinja"))
            }
            for (name, data) in extraFiles { try data.write(to: URL(fileURLWithPath: tmp + "/" + name)) }
        }
    }
}

/// A numerical fault (NaN/Inf) found where only finite numbers are valid. The CLI maps it to exit code 5.
public enum NumericalError: Error, CustomStringConvertible, Equatable {
    case nonFiniteWeight(path: String, tensor: String, index: Int, value: Float)

    public var description: String {
        switch self {
        case let .nonFiniteWeight(p, t, i, v):
            return "\(p): refusing to export: tensor '\(t)' holds a non-finite value (\(v)) at element \(i)"
        }
    }

    /// Index of the first NaN or ±Inf, if any.
    static func firstNonFinite(_ b: UnsafeBufferPointer<Float>) -> Int? {
        // Scan in chunks with a cheap sum test first: a finite chunk sums to a finite value unless it overflows,
        // in which case the element loop decides.
        var i = 0
        let n = b.count
        while i < n {
            let end = min(n, i + 4096)
            var s: Float = 0
            for k in i..<end { s += b[k] * 0 }
            if !s.isFinite || s != 0 {
                for k in i..<end where !b[k].isFinite { return k }
            }
            i = end
        }
        return nil
    }
}
