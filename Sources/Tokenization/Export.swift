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
        var vocab: [String: Int] = [:]
        vocab.reserveCapacity(model.count)
        for (id, t) in model.idToToken.enumerated() where !t.isEmpty && model.vocab[t] == id { vocab[t] = id }
        let modelJSON: [String: Any] = [
            "type": "BPE", "dropout": NSNull(), "unk_token": model.unkToken.map { $0 as Any } ?? NSNull(),
            "continuing_subword_prefix": NSNull(), "end_of_word_suffix": NSNull(), "fuse_unk": model.fuseUnk,
            "byte_fallback": model.byteFallback, "ignore_merges": model.ignoreMerges,
            "vocab": vocab, "merges": model.mergeList.map { [$0.0, $0.1] },
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
            return try JSONSerialization.data(withJSONObject: root, options: [.sortedKeys, .withoutEscapingSlashes])
        } catch {
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
