import Foundation

// Writing an HF-compatible tokenizer.json / tokenizer_config.json.

extension Normalizer {
    var json: Any {
        switch self {
        case .nfc: return ["type": "NFC"]
        case .nfd: return ["type": "NFD"]
        case .nfkc: return ["type": "NFKC"]
        case .nfkd: return ["type": "NFKD"]
        case .lowercase: return ["type": "Lowercase"]
        case let .prepend(p): return ["type": "Prepend", "prepend": p]
        case let .replace(p, c): return ["type": "Replace", "pattern": ["String": p], "content": c]
        case let .sequence(l): return ["type": "Sequence", "normalizers": l.map(\.json)]
        }
    }
}

extension PreTokenizer {
    var json: Any {
        switch self {
        case let .byteLevel(a, r): return ["type": "ByteLevel", "add_prefix_space": a, "trim_offsets": true, "use_regex": r]
        case let .split(p, inv): return ["type": "Split", "pattern": ["Regex": p.regex], "behavior": "Isolated", "invert": inv]
        case let .digits(i): return ["type": "Digits", "individual_digits": i]
        case let .metaspace(r, s, sp): return ["type": "Metaspace", "replacement": String(Character(r)), "prepend_scheme": s.rawValue, "split": sp]
        case .whitespaceSplit: return ["type": "WhitespaceSplit"]
        case let .sequence(l): return ["type": "Sequence", "pretokenizers": l.map(\.json)]
        }
    }
}

extension Decoder {
    var json: Any {
        switch self {
        case .byteLevel: return ["type": "ByteLevel", "add_prefix_space": true, "trim_offsets": true, "use_regex": true]
        case let .replace(p, c): return ["type": "Replace", "pattern": ["String": p], "content": c]
        case .byteFallback: return ["type": "ByteFallback"]
        case .fuse: return ["type": "Fuse"]
        case let .strip(c, a, b): return ["type": "Strip", "content": String(Character(c)), "start": a, "stop": b]
        case let .metaspace(r, s): return ["type": "Metaspace", "replacement": String(Character(r)), "prepend_scheme": s.rawValue, "split": true]
        case let .sequence(l): return ["type": "Sequence", "decoders": l.map(\.json)]
        }
    }
}

extension Tokenizer {
    private func templateJSON(_ pp: PostProcessor) -> Any {
        func items(_ typeId: Int, _ seq: String) -> [Any] {
            pp.single.map { item -> Any in
                switch item {
                case .sequence: return ["Sequence": ["id": seq, "type_id": typeId]]
                case let .special(n): return ["SpecialToken": ["id": n, "type_id": typeId]]
                }
            }
        }
        var specials: [String: Any] = [:]
        for (name, ids) in pp.specialIds { specials[name] = ["id": name, "ids": ids, "tokens": ids.map { token(of: $0) ?? name }] }
        return ["type": "TemplateProcessing", "single": items(0, "A"), "pair": items(0, "A") + items(1, "B"), "special_tokens": specials]
    }

    /// Serialises the tokenizer as a Hugging Face `tokenizer.json`.
    public func tokenizerJSON() throws -> Data {
        // The vocabulary is written by hand: a Swift [String: Int] would fold canonically equivalent spellings
        // (";" and U+037E) into one key, and JSONSerialization would lose a token.
        let placeholder = "\u{1}vocab\u{1}"
        let modelJSON: [String: Any] = [
            "type": "BPE", "dropout": NSNull(), "unk_token": model.unkToken.map { $0 as Any } ?? NSNull(),
            "continuing_subword_prefix": NSNull(), "end_of_word_suffix": NSNull(), "fuse_unk": model.fuseUnk,
            "byte_fallback": model.byteFallback, "ignore_merges": model.ignoreMerges,
            "vocab": placeholder, "merges": model.mergeList.map { [$0.0, $0.1] },
        ]
        let added: [Any] = addedTokens.map {
            ["id": $0.id, "content": $0.content, "single_word": $0.singleWord, "lstrip": $0.lstrip, "rstrip": $0.rstrip,
             "normalized": $0.normalized, "special": $0.special]
        }
        var post: Any = NSNull()
        if let postProcessorJSON { post = postProcessorJSON } else if let postProcessor { post = templateJSON(postProcessor) }
        let root: [String: Any] = [
            "version": "1.0", "truncation": NSNull(), "padding": NSNull(), "added_tokens": added,
            "normalizer": normalizer?.json ?? NSNull(), "pre_tokenizer": preTokenizer?.json ?? NSNull(),
            "post_processor": post, "decoder": decoder?.json ?? NSNull(), "model": modelJSON,
        ]
        do {
            var data = try JSONSerialization.data(withJSONObject: root, options: [.sortedKeys, .withoutEscapingSlashes])
            var object = Data("{".utf8)
            var first = true
            for (id, t) in model.idToToken.enumerated() where !t.isEmpty && model.vocab[t] == id {
                if !first { object.append(UInt8(ascii: ",")) }
                first = false
                object.append(try JSONSerialization.data(withJSONObject: t, options: [.fragmentsAllowed, .withoutEscapingSlashes]))
                object.append(contentsOf: Array(":\(id)".utf8))
            }
            object.append(UInt8(ascii: "}"))
            let marker = try JSONSerialization.data(withJSONObject: placeholder, options: [.fragmentsAllowed])
            guard let range = data.range(of: marker) else {
                throw TokenizerError.invalidJSON(source: source, reason: "cannot serialise: vocabulary placeholder not found")
            }
            data.replaceSubrange(range, with: object)
            return data
        } catch let e as TokenizerError { throw e } catch {
            throw TokenizerError.invalidJSON(source: source, reason: "cannot serialise: \(error)")
        }
    }

    /// A `tokenizer_config.json` that makes transformers load the exported folder the same way.
    public func tokenizerConfigJSON(chatTemplate: String?) -> Data {
        var c: [String: Any] = [
            "tokenizer_class": "PreTrainedTokenizerFast", "model_max_length": 1_000_000_000_000,
            "clean_up_tokenization_spaces": false, "add_bos_token": addBOS, "add_eos_token": addEOS,
        ]
        if let bosToken { c["bos_token"] = bosToken }
        if let eosToken { c["eos_token"] = eosToken }
        if let padToken { c["pad_token"] = padToken }
        if let unkToken { c["unk_token"] = unkToken }
        if let chatTemplate { c["chat_template"] = chatTemplate }
        var dec: [String: Any] = [:]
        for t in addedTokens {
            dec[String(t.id)] = ["content": t.content, "lstrip": t.lstrip, "rstrip": t.rstrip, "single_word": t.singleWord,
                                 "normalized": t.normalized, "special": t.special]
        }
        c["added_tokens_decoder"] = dec
        return (try? JSONSerialization.data(withJSONObject: c, options: [.sortedKeys, .withoutEscapingSlashes, .prettyPrinted])) ?? Data("{}".utf8)
    }
}

/// A tokenizer as llama.cpp's GGUF metadata describes it (`tokenizer.ggml.*`), for `convert --format gguf`.
public struct GGUFVocabulary: Sendable {
    /// `gpt2` (byte-level BPE): the only kind written so far.
    public var model: String
    /// llama.cpp's pre-tokenizer name, which selects its split regex.
    public var pre: String
    public var tokens: [String]
    /// llama.cpp token types: 1 normal, 3 control (special added tokens), 4 user-defined (other added tokens),
    /// 5 unused (padding ids with no token).
    public var tokenTypes: [Int32]
    public var merges: [String]
}

extension Tokenizer {
    /// The vocabulary padded to `size` ids (a model's embedding may have more rows than the tokenizer has tokens).
    public func ggufVocabulary(size: Int) throws -> GGUFVocabulary {
        guard byteLevel else {
            throw TokenizerError.unsupported(source: source, what: "GGUF export of a SentencePiece-style (non byte-level) tokenizer")
        }
        guard let pre = ggufPreName else {
            throw TokenizerError.unsupported(source: source, what: "GGUF export of pre-tokenizer \(String(describing: preTokenizer))")
        }
        let count = max(size, vocabSize)
        var tokens: [String] = [], types: [Int32] = []
        tokens.reserveCapacity(count); types.reserveCapacity(count)
        for id in 0..<count {
            if let added = addedById[id] {
                tokens.append(added.content); types.append(added.special ? 3 : 4)
            } else if id < model.idToToken.count, !model.idToToken[id].isEmpty, model.vocab[model.idToToken[id]] == id {
                tokens.append(model.idToToken[id]); types.append(1)
            } else {
                tokens.append("[PAD\(id)]"); types.append(5)
            }
        }
        return GGUFVocabulary(model: "gpt2", pre: pre, tokens: tokens, tokenTypes: types,
                              merges: model.mergeList.map { "\($0.0) \($0.1)" })
    }

    /// llama.cpp's name for this pre-tokenizer chain, or nil when it has none. Each name is one llama.cpp (and our
    /// GGUF loader) maps back to the same split: Llama 3's regex → `llama-bpe`, Qwen2's → `qwen2`, GPT-2's regex
    /// (ByteLevel with use_regex) → `gpt-2`, or `smollm` when digits are split individually first.
    var ggufPreName: String? {
        let chain: [PreTokenizer]
        if case let .sequence(l)? = preTokenizer { chain = l } else { chain = preTokenizer.map { [$0] } ?? [] }
        var splits: [SplitPattern] = [], digits = false, regexByteLevel = false
        for p in chain {
            switch p {
            case let .split(pattern, invert: false): splits.append(pattern)
            case .digits(individual: true): digits = true
            case let .byteLevel(addPrefixSpace: false, useRegex: r): regexByteLevel = r
            default: return nil
            }
        }
        switch (splits, digits, regexByteLevel) {
        case ([.llama3], false, false): return "llama-bpe"
        case ([.qwen2], false, false): return "qwen2"
        case ([], false, true): return "gpt-2"
        case ([], true, true): return "smollm"
        default: return nil
        }
    }
}
