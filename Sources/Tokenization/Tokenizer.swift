import Foundation

/// A token matched whole in the text before the model runs, with HF's matching flags.
public struct AddedToken: Sendable, Equatable {
    public var id: Int
    public var content: String
    public var special: Bool
    public var lstrip: Bool
    public var rstrip: Bool
    public var singleWord: Bool
    public var normalized: Bool

    public init(id: Int, content: String, special: Bool, lstrip: Bool = false, rstrip: Bool = false,
                singleWord: Bool = false, normalized: Bool = false) {
        self.id = id; self.content = content; self.special = special
        self.lstrip = lstrip; self.rstrip = rstrip; self.singleWord = singleWord; self.normalized = normalized
    }
}

/// Leftmost-longest matcher over a small set of added tokens.
struct AddedTokenMatcher {
    private var byFirst: [Unicode.Scalar: [(scalars: [Unicode.Scalar], token: AddedToken)]] = [:]
    var isEmpty: Bool { byFirst.isEmpty }

    init(_ tokens: [AddedToken]) {
        for t in tokens {
            let s = Array(t.content.unicodeScalars)
            guard let f = s.first else { continue }
            byFirst[f, default: []].append((s, t))
        }
        for k in byFirst.keys { byFirst[k]!.sort { $0.scalars.count > $1.scalars.count } }
    }

    /// Splits `text` into (token?, range) segments the way HF's `find_matches` does.
    func split(_ text: [Unicode.Scalar]) -> [(AddedToken?, Range<Int>)] {
        if byFirst.isEmpty || text.isEmpty { return [(nil, 0..<text.count)] }
        var out: [(AddedToken?, Range<Int>)] = []
        var startOffset = 0
        var i = 0
        let n = text.count
        while i < n {
            guard let cands = byFirst[text[i]] else { i += 1; continue }
            var found: (scalars: [Unicode.Scalar], token: AddedToken)?
            for c in cands where i + c.scalars.count <= n {
                var ok = true
                for k in 1..<c.scalars.count where text[i + k] != c.scalars[k] { ok = false; break }
                if ok { found = c; break }
            }
            guard let m = found else { i += 1; continue }
            var start = i
            var stop = i + m.scalars.count
            i = stop
            let tok = m.token
            if tok.singleWord {
                let startSpace = start == 0 || !CharClass.isWordChar(text[start - 1])
                let stopSpace = stop == n || !CharClass.isWordChar(text[stop])
                if !startSpace || !stopSpace { continue }
            }
            if tok.lstrip {
                var s = start
                while s > 0 && CharClass.isSpace(text[s - 1]) { s -= 1 }
                start = max(s, startOffset)
            }
            if tok.rstrip {
                while stop < n && CharClass.isSpace(text[stop]) { stop += 1 }
                i = stop
            }
            if startOffset < start { out.append((nil, startOffset..<start)) }
            out.append((tok, start..<stop))
            startOffset = stop
        }
        if startOffset < n { out.append((nil, startOffset..<n)) }
        return out
    }
}

/// A Hugging Face-compatible tokenizer (BPE, byte-level or SentencePiece-style with byte fallback).
public final class Tokenizer: @unchecked Sendable {
    let source: String
    let model: BPEModel
    let normalizer: Normalizer?
    let preTokenizer: PreTokenizer?
    let postProcessor: PostProcessor?
    /// The post-processor as it was given (for export); nil when built from GGUF.
    let postProcessorJSON: Any?
    let decoder: Decoder?
    public let addedTokens: [AddedToken]
    private let rawMatcher: AddedTokenMatcher
    private let normalizedMatcher: AddedTokenMatcher
    let addedById: [Int: AddedToken]
    private let addedByContent: [String: AddedToken]
    let byteLevel: Bool

    public let bosToken: String?
    public let eosToken: String?
    public let padToken: String?
    public let unkToken: String?
    public let addBOS: Bool
    public let addEOS: Bool

    init(source: String, model: BPEModel, normalizer: Normalizer?, preTokenizer: PreTokenizer?,
         postProcessor: PostProcessor?, postProcessorJSON: Any?, decoder: Decoder?, addedTokens: [AddedToken],
         bos: String?, eos: String?, pad: String?, unk: String?, addBOS: Bool, addEOS: Bool) {
        self.source = source
        self.model = model
        self.normalizer = normalizer
        self.preTokenizer = preTokenizer
        self.postProcessor = postProcessor
        self.postProcessorJSON = postProcessorJSON
        self.decoder = decoder
        self.addedTokens = addedTokens
        self.rawMatcher = AddedTokenMatcher(addedTokens.filter { !$0.normalized })
        self.normalizedMatcher = AddedTokenMatcher(addedTokens.filter { $0.normalized })
        var byId: [Int: AddedToken] = [:], byContent: [String: AddedToken] = [:]
        for t in addedTokens { byId[t.id] = t; byContent[t.content] = t }
        self.addedById = byId
        self.addedByContent = byContent
        self.byteLevel = preTokenizer?.isByteLevel ?? false
        self.bosToken = bos; self.eosToken = eos; self.padToken = pad; self.unkToken = unk
        self.addBOS = addBOS; self.addEOS = addEOS
    }

    // MARK: lookup

    /// Vocabulary size including added tokens (HF's `len(tokenizer)`).
    public var vocabSize: Int { max(model.count, (addedTokens.map(\.id).max() ?? -1) + 1) }

    public func id(of token: String) -> Int? { addedByContent[token]?.id ?? model.vocab[token] }

    public func token(of id: Int) -> String? {
        if let t = addedById[id] { return t.content }
        guard id >= 0, id < model.count else { return nil }
        let s = model.idToToken[id]
        return s.isEmpty ? nil : s
    }

    public var bosTokenId: Int? { bosToken.flatMap { id(of: $0) } }
    public var eosTokenId: Int? { eosToken.flatMap { id(of: $0) } }
    public var padTokenId: Int? { padToken.flatMap { id(of: $0) } }
    public var unkTokenId: Int? { unkToken.flatMap { id(of: $0) } }
    public var specialTokenIds: Set<Int> { Set(addedTokens.filter(\.special).map(\.id)) }

    // MARK: encode / decode

    public func encode(_ text: String, addSpecialTokens: Bool = true) -> [Int] {
        var ids: [Int] = []
        let scalars = Array(text.unicodeScalars)
        for (tok, range) in rawMatcher.split(scalars) {
            if let tok { ids.append(tok.id); continue }
            if range.isEmpty { continue }
            let atStart = range.lowerBound == 0
            var segment = String(String.UnicodeScalarView(scalars[range]))
            if let normalizer { segment = normalizer.apply(segment) }
            let normScalars = Array(segment.unicodeScalars)
            for (ntok, nrange) in normalizedMatcher.split(normScalars) {
                if let ntok { ids.append(ntok.id); continue }
                if nrange.isEmpty { continue }
                let piece = Piece(scalars: Array(normScalars[nrange]), atStart: atStart && nrange.lowerBound == 0)
                encodePiece(piece, into: &ids)
            }
        }
        if addSpecialTokens, let postProcessor { return postProcessor.apply(ids) }
        return ids
    }

    private func encodePiece(_ piece: Piece, into ids: inout [Int]) {
        let pieces = preTokenizer?.apply([piece]) ?? [piece]
        for p in pieces where !p.scalars.isEmpty {
            if byteLevel {
                var utf8: [UInt8] = []
                for s in p.scalars { utf8.append(contentsOf: UTF8.encode(s)!) }
                ids.append(contentsOf: model.encode(word: ByteLevelMap.spell(utf8), byteLevel: true, bytes: utf8))
            } else {
                let w = String(String.UnicodeScalarView(p.scalars))
                ids.append(contentsOf: model.encode(word: w, byteLevel: false, bytes: nil))
            }
        }
    }

    public func decode(_ ids: [Int], skipSpecialTokens: Bool = false) -> String {
        var tokens: [String] = []
        tokens.reserveCapacity(ids.count)
        for id in ids {
            if let t = addedById[id] {
                if skipSpecialTokens && t.special { continue }
                tokens.append(t.content)
            } else if let t = token(of: id) {
                tokens.append(t)
            }
        }
        guard let decoder else { return tokens.joined(separator: " ") }
        return decoder.decodeChain(tokens).joined()
    }
}

extension String.UnicodeScalarView {
    init(_ s: ArraySlice<Unicode.Scalar>) {
        self.init()
        append(contentsOf: s)
    }
    init(_ s: [Unicode.Scalar]) {
        self.init()
        append(contentsOf: s)
    }
}
