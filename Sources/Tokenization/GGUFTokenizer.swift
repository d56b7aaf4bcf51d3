import Foundation

/// The `tokenizer.*` metadata of a GGUF file, as plain values (the caller reads the file).
public struct GGUFTokenizerMetadata: Sendable {
    public var model: String
    public var pre: String?
    public var tokens: [String]
    public var tokenTypes: [Int]?
    public var merges: [String]?
    public var scores: [Float]?
    public var bosTokenId: Int?
    public var eosTokenId: Int?
    public var unknownTokenId: Int?
    public var paddingTokenId: Int?
    public var eotTokenId: Int?
    public var addBOS: Bool?
    public var addEOS: Bool?
    public var addSpacePrefix: Bool?
    public var chatTemplate: String?
    /// `general.architecture`; some architectures need a tokenizer shape we do not build.
    public var architecture: String?

    public init(model: String, pre: String? = nil, tokens: [String], tokenTypes: [Int]? = nil, merges: [String]? = nil,
                scores: [Float]? = nil, bosTokenId: Int? = nil, eosTokenId: Int? = nil, unknownTokenId: Int? = nil,
                paddingTokenId: Int? = nil, eotTokenId: Int? = nil, addBOS: Bool? = nil, addEOS: Bool? = nil,
                addSpacePrefix: Bool? = nil, chatTemplate: String? = nil, architecture: String? = nil) {
        self.model = model; self.pre = pre; self.tokens = tokens; self.tokenTypes = tokenTypes; self.merges = merges
        self.scores = scores; self.bosTokenId = bosTokenId; self.eosTokenId = eosTokenId
        self.unknownTokenId = unknownTokenId; self.paddingTokenId = paddingTokenId; self.eotTokenId = eotTokenId
        self.addBOS = addBOS; self.addEOS = addEOS; self.addSpacePrefix = addSpacePrefix
        self.chatTemplate = chatTemplate; self.architecture = architecture
    }
}

extension Tokenizer {
    static let llama3Pres: Set<String> = ["llama3", "llama-v3", "llama-bpe", "falcon3", "falcon-h1", "pixtral", "midm-2.0",
                                          "lfm2", "jina-v5-nano", "dbrx", "smaug-bpe"]
    static let qwen2Pres: Set<String> = ["qwen2", "deepseek-r1-qwen", "kormo", "f2llmv2", "megrez"]
    static let unsupportedPres: Set<String> = ["tekken", "qwen35", "gpt-4o", "llama4", "kanana2", "talkie", "minimax-m2"]

    /// Builds the tokenizer transformers' GGUF conversion builds for this metadata.
    public static func fromGGUF(_ meta: GGUFTokenizerMetadata, source: String) throws -> Tokenizer {
        let n = meta.tokens.count
        guard n > 0 else { throw TokenizerError.invalidVocabulary(source: source, reason: "tokenizer.ggml.tokens is empty") }
        if let t = meta.tokenTypes, t.count != n {
            throw TokenizerError.countMismatch(source: source, what: "tokenizer.ggml.token_type", expected: n, actual: t.count)
        }
        if let s = meta.scores, s.count != n {
            throw TokenizerError.countMismatch(source: source, what: "tokenizer.ggml.scores", expected: n, actual: s.count)
        }
        for (name, id) in [("bos", meta.bosTokenId), ("eos", meta.eosTokenId), ("unknown", meta.unknownTokenId),
                           ("padding", meta.paddingTokenId), ("eot", meta.eotTokenId)] {
            if let id, id < 0 || id >= n { throw TokenizerError.idOutOfRange(source: source, what: "tokenizer.ggml.\(name)_token_id", id: id, count: n) }
        }
        let types = meta.tokenTypes ?? []
        let byteLevel: Bool
        // Gemma's SentencePiece files: transformers builds a GemmaTokenizer (no prefix space, spaces normalised to
        // "▁", merges ordered by file position rather than by score).
        let gemma = meta.model == "llama" && ["gemma", "gemma2", "gemma3"].contains(meta.architecture ?? "")
        var tokens = meta.tokens
        if gemma {
            // A token of spaces is stored as real spaces; GemmaTokenizer looks it up as "▁"s (one per character,
            // as transformers respells any whitespace-only token that holds a space).
            for i in tokens.indices where tokens[i].contains(" ") && tokens[i].unicodeScalars.allSatisfy(\.properties.isWhitespace) {
                tokens[i] = String(repeating: "\u{2581}", count: tokens[i].unicodeScalars.count)
            }
        }
        var vocab = Vocabulary()
        vocab.reserveCapacity(n)
        switch meta.model {
        case "gpt2":
            byteLevel = true
            for (i, t) in meta.tokens.enumerated() {
                vocab[ByteLevelMap.isByteLevelSpelling(t) ? t : ByteLevelMap.spell(Array(t.utf8))] = i
            }
        case "llama":
            byteLevel = false
            if let a = meta.architecture, a == "phi3" {
                throw TokenizerError.unsupported(source: source, what: "sentencepiece tokenizer for architecture \(a)")
            }
            for (i, t) in tokens.enumerated() { vocab[t] = i }
        default:
            throw TokenizerError.unsupported(source: source, what: "tokenizer.ggml.model \(meta.model.debugDescription)")
        }
        // Python dicts keep the last id of a repeated token; ids that lose are unreachable as in HF.
        var merges: [(String, String)] = []
        if let list = meta.merges {
            merges.reserveCapacity(list.count)
            for (i, m) in list.enumerated() {
                guard let parts = splitMerge(m) else { throw TokenizerError.badMerge(source: source, index: i, merge: m, reason: "expected two tokens separated by one space") }
                merges.append(parts)
            }
        } else if meta.model == "llama" {
            guard let scores = meta.scores else { throw TokenizerError.missingField(source: source, field: "tokenizer.ggml.scores (needed when there are no merges)") }
            // Merge generation tries every split of every token (quadratic in token length); SentencePiece pieces
            // are short, so a huge one is a hostile file, not a vocabulary.
            if let i = tokens.firstIndex(where: { $0.utf8.count > 4096 }) {
                throw TokenizerError.invalidVocabulary(source: source, reason: "token \(i) is \(tokens[i].utf8.count) bytes long (limit 4096)")
            }
            // Gemma's scores do not follow its merge order; the order of the tokens in the file does.
            merges = generateMerges(tokens: tokens, vocab: vocab, scores: gemma ? tokens.indices.map { -Float($0) } : scores)
        }
        let unknown = gemma ? meta.unknownTokenId.map { tokens[$0] } : nil
        let model = try BPEModel(vocab: vocab, merges: merges, unkToken: unknown, fuseUnk: meta.model == "llama",
                                 byteFallback: meta.model == "llama", ignoreMerges: false, source: source)

        // Added tokens, in the order transformers adds them; a token not in the vocabulary gets the next id.
        var added: [AddedToken] = []
        var nextId = model.count
        func add(_ content: String, special: Bool) {
            if let i = added.firstIndex(where: { $0.content == content }) {
                if special && !added[i].special { added[i].special = true }
                return
            }
            let id: Int
            if let v = vocab[content] { id = v } else { id = nextId; nextId += 1 }
            added.append(AddedToken(id: id, content: content, special: special, normalized: false))
        }
        // The class defaults (GPT2Tokenizer / LlamaTokenizer) are registered first.
        if byteLevel { add("<|endoftext|>", special: true) } else if gemma {
            for t in ["<unk>", "<bos>", "<eos>", "<pad>", "<mask>"] where vocab[t] != nil { add(t, special: true) }
        } else { for t in ["<s>", "</s>", "<unk>"] { add(t, special: true) } }
        for (i, t) in tokens.enumerated() where i < types.count && types[i] == 3 {
            if !byteLevel || ByteLevelMap.isByteLevelSpelling(t) { add(t, special: true) }
        }
        for (i, t) in tokens.enumerated() where i < types.count && types[i] == 4 && vocab[t] != nil {
            add(t, special: false)
        }
        let name: (Int?) -> String? = { $0.map { tokens[$0] } }
        let bos = name(meta.bosTokenId), eos = name(meta.eosTokenId), unk = name(meta.unknownTokenId), pad = name(meta.paddingTokenId)
        for t in [bos, eos, unk, pad].compactMap({ $0 }) { add(t, special: true) }

        let pre: PreTokenizer?
        let decoder: Decoder
        var normalizer: Normalizer?
        if gemma {
            // GemmaTokenizer's Split(" ") pre-tokenizer never matches after its normaliser turned spaces into "▁".
            normalizer = .replace(pattern: " ", content: "\u{2581}")
            pre = nil
            decoder = .sequence([.replace(pattern: "\u{2581}", content: " "), .byteFallback, .fuse])
        } else if byteLevel {
            let p = meta.pre ?? "default"
            if llama3Pres.contains(p) {
                pre = .sequence([.split(.llama3, invert: false), .byteLevel(addPrefixSpace: false, useRegex: false)])
            } else if qwen2Pres.contains(p) {
                pre = .sequence([.split(.qwen2, invert: false), .byteLevel(addPrefixSpace: false, useRegex: false)])
            } else if unsupportedPres.contains(p) {
                throw TokenizerError.unsupported(source: source, what: "pre-tokenizer \(p.debugDescription)")
            } else {
                pre = .byteLevel(addPrefixSpace: false, useRegex: true)
            }
            decoder = .byteLevel
        } else {
            pre = .metaspace(replacement: "\u{2581}", scheme: .first, split: false)
            decoder = .sequence([.replace(pattern: "\u{2581}", content: " "), .byteFallback, .fuse, .strip(content: " ", start: 1, stop: 0)])
        }
        let idOf: (String) -> Int? = { c in added.first { $0.content == c }?.id ?? vocab[c] }
        let addBOS = (meta.addBOS ?? (meta.model == "llama")) && bos != nil
        let addEOS = (meta.addEOS ?? false) && eos != nil
        var pp = PostProcessor(single: [], specialIds: [:])
        if addBOS, let bos, let id = idOf(bos) { pp.single.append(.special(bos)); pp.specialIds[bos] = [id] }
        pp.single.append(.sequence)
        if addEOS, let eos, let id = idOf(eos) { pp.single.append(.special(eos)); pp.specialIds[eos] = [id] }
        return Tokenizer(source: source, model: model, normalizer: normalizer, preTokenizer: pre, postProcessor: pp,
                         postProcessorJSON: nil, decoder: decoder, addedTokens: added.sorted { $0.id < $1.id },
                         bos: bos, eos: eos, pad: pad, unk: unk, addBOS: addBOS, addEOS: addEOS)
    }

    /// transformers' `generate_merges`: every split of every token into two vocabulary tokens,
    /// ordered by the token's score (best first), then by the lengths of the two halves.
    static func generateMerges(tokens: [String], vocab: Vocabulary, scores: [Float]) -> [(String, String)] {
        // dict(zip(tokens, scores)): first position wins the order, last occurrence wins the score.
        var order: [String] = []
        var score: [TokenString: Float] = [:]
        for (t, s) in zip(tokens, scores) {
            if score[TokenString(t)] == nil { order.append(t) }
            score[TokenString(t)] = s
        }
        struct M { let l: String; let r: String; let s: Float; let ll: Int; let rl: Int; let seq: Int }
        var all: [M] = []
        for t in order {
            let sc = Array(t.unicodeScalars)
            guard sc.count > 1 else { continue }
            var local: [(String, String, Int, Int, Int, Int)] = []
            for k in 1..<sc.count {
                let l = String(String.UnicodeScalarView(sc[0..<k])), r = String(String.UnicodeScalarView(sc[k...]))
                if let il = vocab[l], let ir = vocab[r] { local.append((l, r, il, ir, k, sc.count - k)) }
            }
            local.sort { ($0.2, $0.3) < ($1.2, $1.3) }
            for x in local { all.append(M(l: x.0, r: x.1, s: score[TokenString(t)]!, ll: x.4, rl: x.5, seq: all.count)) }
        }
        // Python's sorted(reverse=True) is stable: equal keys keep their original order.
        all.sort { a, b in
            if a.s != b.s { return a.s > b.s }
            if a.ll != b.ll { return a.ll > b.ll }
            if a.rl != b.rl { return a.rl > b.rl }
            return a.seq < b.seq
        }
        return all.map { ($0.l, $0.r) }
    }
}
