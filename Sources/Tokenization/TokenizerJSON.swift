import Foundation

// Reading and writing Hugging Face `tokenizer.json`.

private struct J {
    let source: String
    func dict(_ v: Any?, _ what: String) throws -> [String: Any] {
        guard let d = v as? [String: Any] else { throw TokenizerError.invalidJSON(source: source, reason: "\(what) is not an object") }
        return d
    }
    func string(_ d: [String: Any], _ key: String, _ ctx: String) throws -> String {
        guard let s = d[key] as? String else { throw TokenizerError.missingField(source: source, field: "\(ctx).\(key)") }
        return s
    }
    func bool(_ d: [String: Any], _ key: String, default def: Bool) -> Bool {
        if let n = d[key] as? NSNumber { return n.boolValue }
        return def
    }
    func int(_ v: Any?) -> Int? {
        guard let n = v as? NSNumber else { return nil }
        let d = n.doubleValue
        guard d.rounded() == d, abs(d) < 1e15 else { return nil }
        return Int(d)
    }
    func pattern(_ d: [String: Any], _ ctx: String) throws -> (string: String?, regex: String?) {
        guard let p = d["pattern"] as? [String: Any] else { throw TokenizerError.missingField(source: source, field: "\(ctx).pattern") }
        return (p["String"] as? String, p["Regex"] as? String)
    }
}

extension Tokenizer {
    /// Builds a tokenizer from `tokenizer.json` bytes (and optionally `tokenizer_config.json`, which supplies the
    /// named special tokens). `source` names the file in errors.
    public static func fromTokenizerJSON(_ data: Data, config: Data? = nil, source: String) throws -> Tokenizer {
        let root: Any
        do { root = try JSONSerialization.jsonObject(with: data, options: [.fragmentsAllowed]) } catch {
            throw TokenizerError.invalidJSON(source: source, reason: "\(error.localizedDescription)")
        }
        let j = J(source: source)
        let top = try j.dict(root, "top level")
        let modelDict = try j.dict(top["model"], "model")
        let mtype = (modelDict["type"] as? String) ?? "BPE"
        guard mtype == "BPE" else { throw TokenizerError.unsupported(source: source, what: "model type \(mtype.debugDescription)") }
        for key in ["continuing_subword_prefix", "end_of_word_suffix"] {
            if let s = modelDict[key] as? String, !s.isEmpty {
                throw TokenizerError.unsupported(source: source, what: "BPE \(key) \(s.debugDescription)")
            }
        }
        let vocabDict = try j.dict(modelDict["vocab"], "model.vocab")
        // The keys as written (see VocabularyScanner); JSONSerialization's dictionary has already validated the ids.
        let exact = try VocabularyScanner.model(data, source: source)
        var entries: [(String, Any)] = vocabDict.map { ($0.key, $0.value) }
        if let v = exact.vocab, v.count >= vocabDict.count { entries = v.map { ($0.0, $0.1 as Any) } }
        var vocab = Vocabulary()
        vocab.reserveCapacity(entries.count)
        for (k, v) in entries {
            guard let id = (v as? Int) ?? j.int(v) else { throw TokenizerError.invalidJSON(source: source, reason: "vocab entry \(k.debugDescription) has no integer id") }
            guard id >= 0, id < max(entries.count, 1) * 2 + 1024 else {
                throw TokenizerError.idOutOfRange(source: source, what: "vocab entry \(k.debugDescription)", id: id, count: entries.count)
            }
            vocab[k] = id
        }
        var merges: [(String, String)] = []
        if let list = exact.merges ?? (modelDict["merges"] as? [Any]) {
            merges.reserveCapacity(list.count)
            for (i, m) in list.enumerated() {
                if let s = m as? String {
                    guard let parts = splitMerge(s) else { throw TokenizerError.badMerge(source: source, index: i, merge: s, reason: "expected two tokens separated by one space") }
                    merges.append(parts)
                } else if let p = m as? [Any], p.count == 2, let a = p[0] as? String, let b = p[1] as? String {
                    merges.append((a, b))
                } else {
                    throw TokenizerError.badMerge(source: source, index: i, merge: "\(m)", reason: "not a string or a pair of strings")
                }
            }
        } else if modelDict["merges"] != nil && !(modelDict["merges"] is NSNull) {
            throw TokenizerError.invalidJSON(source: source, reason: "model.merges is not an array")
        }
        if let d = modelDict["dropout"], !(d is NSNull), let x = d as? NSNumber, x.doubleValue > 0 {
            throw TokenizerError.unsupported(source: source, what: "BPE dropout")
        }
        let model = try BPEModel(vocab: vocab, merges: merges, unkToken: modelDict["unk_token"] as? String,
                                 fuseUnk: j.bool(modelDict, "fuse_unk", default: false),
                                 byteFallback: j.bool(modelDict, "byte_fallback", default: false),
                                 ignoreMerges: j.bool(modelDict, "ignore_merges", default: false), source: source)

        var added: [AddedToken] = []
        if let list = top["added_tokens"] as? [Any] {
            for (i, item) in list.enumerated() {
                let d = try j.dict(item, "added_tokens[\(i)]")
                guard let id = j.int(d["id"]) else { throw TokenizerError.missingField(source: source, field: "added_tokens[\(i)].id") }
                let content = try j.string(d, "content", "added_tokens[\(i)]")
                guard id >= 0, id < model.count + list.count + 1024 else {
                    throw TokenizerError.idOutOfRange(source: source, what: "added token \(content.debugDescription)", id: id, count: model.count + list.count)
                }
                guard !content.isEmpty else { throw TokenizerError.invalidVocabulary(source: source, reason: "added token \(id) is empty") }
                let special = j.bool(d, "special", default: false)
                added.append(AddedToken(id: id, content: content, special: special,
                                        lstrip: j.bool(d, "lstrip", default: false), rstrip: j.bool(d, "rstrip", default: false),
                                        singleWord: j.bool(d, "single_word", default: false),
                                        normalized: j.bool(d, "normalized", default: !special)))
            }
        }
        let normalizer = try top["normalizer"].flatMap { $0 is NSNull ? nil : try parseNormalizer($0, j) }
        let pre = try top["pre_tokenizer"].flatMap { $0 is NSNull ? nil : try parsePreTokenizer($0, j) }
        let decoder = try top["decoder"].flatMap { $0 is NSNull ? nil : try parseDecoder($0, j) }
        let idLookup: (String) -> Int? = { name in added.first { $0.content == name }?.id ?? vocab[name] }
        var post: PostProcessor?
        var postJSON: Any?
        if let p = top["post_processor"], !(p is NSNull) {
            post = try parsePostProcessor(p, j, idLookup)
            postJSON = p
        }
        let idLimit = max(model.count, (added.map(\.id).max() ?? -1) + 1)
        for (name, ids) in post?.specialIds ?? [:] {
            for id in ids where id >= idLimit {
                throw TokenizerError.idOutOfRange(source: source, what: "post-processor token \(name.debugDescription)", id: id, count: idLimit)
            }
        }
        // Named special tokens come from tokenizer_config.json when given.
        var bos: String?, eos: String?, pad: String?, unk: String? = modelDict["unk_token"] as? String
        var addBOSFlag: Bool?, addEOSFlag: Bool?
        if let config {
            guard let c = try? JSONSerialization.jsonObject(with: config) as? [String: Any] else {
                throw TokenizerError.invalidJSON(source: source + " (tokenizer_config)", reason: "not a JSON object")
            }
            func name(_ k: String) -> String? {
                if let s = c[k] as? String { return s }
                if let d = c[k] as? [String: Any] { return d["content"] as? String }
                return nil
            }
            bos = name("bos_token"); eos = name("eos_token"); pad = name("pad_token"); unk = name("unk_token") ?? unk
            addBOSFlag = (c["add_bos_token"] as? NSNumber)?.boolValue
            addEOSFlag = (c["add_eos_token"] as? NSNumber)?.boolValue
        }
        var addBOS = false, addEOS = false
        if let post {
            if let first = post.single.first, case let .special(n) = first { addBOS = true; if bos == nil { bos = n } }
            if post.single.count > 1, let last = post.single.last, case let .special(n) = last { addEOS = true; if eos == nil { eos = n } }
        }
        // transformers rebuilds the template when the config states add_bos_token/add_eos_token.
        if addBOSFlag != nil || addEOSFlag != nil {
            let b = (addBOSFlag ?? false) && bos.flatMap(idLookup) != nil
            let e = (addEOSFlag ?? false) && eos.flatMap(idLookup) != nil
            var pp = PostProcessor(single: [], specialIds: [:])
            if b, let bos, let id = idLookup(bos) { pp.single.append(.special(bos)); pp.specialIds[bos] = [id] }
            pp.single.append(.sequence)
            if e, let eos, let id = idLookup(eos) { pp.single.append(.special(eos)); pp.specialIds[eos] = [id] }
            post = pp
            postJSON = nil
            addBOS = b; addEOS = e
        }
        return Tokenizer(source: source, model: model, normalizer: normalizer, preTokenizer: pre, postProcessor: post,
                         postProcessorJSON: postJSON, decoder: decoder, addedTokens: added,
                         bos: bos, eos: eos, pad: pad, unk: unk, addBOS: addBOS, addEOS: addEOS)
    }

    private static func parseNormalizer(_ v: Any, _ j: J) throws -> Normalizer {
        let d = try j.dict(v, "normalizer")
        let t = try j.string(d, "type", "normalizer")
        switch t {
        case "NFC": return .nfc
        case "NFD": return .nfd
        case "NFKC": return .nfkc
        case "NFKD": return .nfkd
        case "Lowercase": return .lowercase
        case "Prepend": return .prepend(try j.string(d, "prepend", "normalizer"))
        case "Replace":
            let p = try j.pattern(d, "normalizer")
            guard let s = p.string else { throw TokenizerError.unsupported(source: j.source, what: "Replace normalizer with regex \(p.regex ?? "")") }
            return .replace(pattern: s, content: try j.string(d, "content", "normalizer"))
        case "Sequence":
            guard let list = d["normalizers"] as? [Any] else { throw TokenizerError.missingField(source: j.source, field: "normalizer.normalizers") }
            return .sequence(try list.map { try parseNormalizer($0, j) })
        default: throw TokenizerError.unsupported(source: j.source, what: "normalizer \(t.debugDescription)")
        }
    }

    private static func parsePreTokenizer(_ v: Any, _ j: J) throws -> PreTokenizer {
        let d = try j.dict(v, "pre_tokenizer")
        let t = try j.string(d, "type", "pre_tokenizer")
        switch t {
        case "ByteLevel":
            return .byteLevel(addPrefixSpace: j.bool(d, "add_prefix_space", default: true), useRegex: j.bool(d, "use_regex", default: true))
        case "Split":
            let p = try j.pattern(d, "pre_tokenizer")
            let behavior = (d["behavior"] as? String) ?? "Isolated"
            guard behavior == "Isolated" else { throw TokenizerError.unsupported(source: j.source, what: "Split behavior \(behavior)") }
            guard let rx = p.regex ?? p.string, let pat = SplitPattern(regex: rx) else {
                throw TokenizerError.unknownSplitRegex(source: j.source, pattern: p.regex ?? p.string ?? "")
            }
            return .split(pat, invert: j.bool(d, "invert", default: false))
        case "Digits": return .digits(individual: j.bool(d, "individual_digits", default: false))
        case "WhitespaceSplit": return .whitespaceSplit
        case "Metaspace":
            let rep = (d["replacement"] as? String) ?? "\u{2581}"
            guard rep.unicodeScalars.count == 1, let r = rep.unicodeScalars.first else {
                throw TokenizerError.unsupported(source: j.source, what: "Metaspace replacement \(rep.debugDescription)")
            }
            var scheme = PrependScheme.always
            if let s = d["prepend_scheme"] as? String {
                guard let ps = PrependScheme(rawValue: s) else { throw TokenizerError.unsupported(source: j.source, what: "prepend_scheme \(s)") }
                scheme = ps
            } else if let a = d["add_prefix_space"] as? NSNumber {
                scheme = a.boolValue ? .always : .never
            }
            return .metaspace(replacement: r, scheme: scheme, split: j.bool(d, "split", default: true))
        case "Sequence":
            guard let list = d["pretokenizers"] as? [Any] else { throw TokenizerError.missingField(source: j.source, field: "pre_tokenizer.pretokenizers") }
            return .sequence(try list.map { try parsePreTokenizer($0, j) })
        default: throw TokenizerError.unsupported(source: j.source, what: "pre-tokenizer \(t.debugDescription)")
        }
    }

    private static func parseDecoder(_ v: Any, _ j: J) throws -> Decoder {
        let d = try j.dict(v, "decoder")
        let t = try j.string(d, "type", "decoder")
        switch t {
        case "ByteLevel": return .byteLevel
        case "ByteFallback": return .byteFallback
        case "Fuse": return .fuse
        case "Replace":
            let p = try j.pattern(d, "decoder")
            guard let s = p.string else { throw TokenizerError.unsupported(source: j.source, what: "Replace decoder with regex") }
            return .replace(pattern: s, content: try j.string(d, "content", "decoder"))
        case "Strip":
            let c = try j.string(d, "content", "decoder")
            guard c.unicodeScalars.count == 1, let s = c.unicodeScalars.first else { throw TokenizerError.unsupported(source: j.source, what: "Strip content \(c.debugDescription)") }
            return .strip(content: s, start: max(0, min(j.int(d["start"]) ?? 0, 1 << 20)), stop: max(0, min(j.int(d["stop"]) ?? 0, 1 << 20)))
        case "Metaspace":
            let rep = (d["replacement"] as? String) ?? "\u{2581}"
            guard let r = rep.unicodeScalars.first, rep.unicodeScalars.count == 1 else { throw TokenizerError.unsupported(source: j.source, what: "Metaspace replacement") }
            let scheme = (d["prepend_scheme"] as? String).flatMap(PrependScheme.init(rawValue:)) ?? .always
            return .metaspace(replacement: r, prependScheme: scheme)
        case "Sequence":
            guard let list = d["decoders"] as? [Any] else { throw TokenizerError.missingField(source: j.source, field: "decoder.decoders") }
            return .sequence(try list.map { try parseDecoder($0, j) })
        default: throw TokenizerError.unsupported(source: j.source, what: "decoder \(t.debugDescription)")
        }
    }

    private static func parsePostProcessor(_ v: Any, _ j: J, _ lookup: (String) -> Int?) throws -> PostProcessor? {
        let d = try j.dict(v, "post_processor")
        let t = try j.string(d, "type", "post_processor")
        switch t {
        case "ByteLevel": return nil
        case "Sequence":
            guard let list = d["processors"] as? [Any] else { throw TokenizerError.missingField(source: j.source, field: "post_processor.processors") }
            var result: PostProcessor?
            for p in list {
                if let pp = try parsePostProcessor(p, j, lookup) {
                    guard result == nil else { throw TokenizerError.unsupported(source: j.source, what: "two templates in one post-processor") }
                    result = pp
                }
            }
            return result
        case "TemplateProcessing":
            guard let single = d["single"] as? [Any] else { throw TokenizerError.missingField(source: j.source, field: "post_processor.single") }
            var pp = PostProcessor(single: [], specialIds: [:])
            let specials = (d["special_tokens"] as? [String: Any]) ?? [:]
            for item in single {
                let it = try j.dict(item, "template item")
                if it["Sequence"] != nil {
                    pp.single.append(.sequence)
                } else if let st = it["SpecialToken"] as? [String: Any], let name = st["id"] as? String {
                    pp.single.append(.special(name))
                    if let spec = specials[name] as? [String: Any], let ids = spec["ids"] as? [Any] {
                        pp.specialIds[name] = try ids.map {
                            guard let i = j.int($0), i >= 0 else { throw TokenizerError.invalidJSON(source: j.source, reason: "bad id for template token \(name)") }
                            return i
                        }
                    } else if let id = lookup(name) {
                        pp.specialIds[name] = [id]
                    } else {
                        throw TokenizerError.invalidVocabulary(source: j.source, reason: "template token \(name.debugDescription) is unknown")
                    }
                } else {
                    throw TokenizerError.invalidJSON(source: j.source, reason: "bad template item")
                }
            }
            return pp
        default: throw TokenizerError.unsupported(source: j.source, what: "post-processor \(t.debugDescription)")
        }
    }
}
