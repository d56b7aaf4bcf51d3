import Foundation

/// A pre-token: a run of text plus whether it begins at offset 0 of the original input
/// (Metaspace's `prepend_scheme: first` only prefixes that one).
struct Piece {
    var scalars: [Unicode.Scalar]
    var atStart: Bool
}

indirect enum Normalizer {
    case nfc, nfd, nfkc, nfkd, lowercase
    case prepend(String)
    case replace(pattern: String, content: String)
    case sequence([Normalizer])

    func apply(_ s: String) -> String {
        switch self {
        case .nfc: return s.precomposedStringWithCanonicalMapping
        case .nfd: return s.decomposedStringWithCanonicalMapping
        case .nfkc: return s.precomposedStringWithCompatibilityMapping
        case .nfkd: return s.decomposedStringWithCompatibilityMapping
        case .lowercase: return s.lowercased()
        case let .prepend(p): return s.isEmpty ? s : p + s
        case let .replace(pattern, content):
            return pattern.isEmpty ? s : scalarReplace(s, pattern, content)
        case let .sequence(list): return list.reduce(s) { $1.apply($0) }
        }
    }
}

/// Replacement over Unicode scalars: `String.replacingOccurrences` compares by grapheme, which
/// would miss a space followed by a combining mark.
func scalarReplace(_ s: String, _ pattern: String, _ content: String) -> String {
    let src = Array(s.unicodeScalars), pat = Array(pattern.unicodeScalars)
    guard !pat.isEmpty, src.count >= pat.count else { return s }
    var out = String.UnicodeScalarView()
    var i = 0
    while i < src.count {
        if src[i] == pat[0], i + pat.count <= src.count, Array(src[i..<(i + pat.count)]) == pat {
            out.append(contentsOf: content.unicodeScalars)
            i += pat.count
        } else {
            out.append(src[i])
            i += 1
        }
    }
    return String(out)
}

enum PrependScheme: String { case always, first, never }

indirect enum PreTokenizer {
    case byteLevel(addPrefixSpace: Bool, useRegex: Bool)
    case split(SplitPattern, invert: Bool)
    case digits(individual: Bool)
    case metaspace(replacement: Unicode.Scalar, scheme: PrependScheme, split: Bool)
    case whitespaceSplit
    case sequence([PreTokenizer])

    /// Whether this chain ends in ByteLevel, i.e. pieces are turned into byte-alphabet strings.
    var isByteLevel: Bool {
        switch self {
        case .byteLevel: return true
        case let .sequence(l): return l.contains { $0.isByteLevel }
        default: return false
        }
    }

    func apply(_ pieces: [Piece]) -> [Piece] {
        switch self {
        case let .sequence(list):
            return list.reduce(pieces) { $1.apply($0) }
        case let .byteLevel(addPrefixSpace, useRegex):
            var out: [Piece] = []
            for var p in pieces {
                if addPrefixSpace && p.scalars.first != " " { p.scalars.insert(" ", at: 0) }
                if useRegex {
                    for r in SplitPattern.gpt2.matches(p.scalars) {
                        out.append(Piece(scalars: Array(p.scalars[r]), atStart: p.atStart && r.lowerBound == 0))
                    }
                    // The GPT-2 pattern covers every character, so there are no gaps to keep.
                } else {
                    out.append(p)
                }
            }
            // Byte mapping happens in the model step; pieces stay as text here.
            return out
        case let .split(pattern, invert):
            var out: [Piece] = []
            for p in pieces {
                let ms = pattern.matches(p.scalars)
                var last = 0
                for r in ms {
                    if invert {
                        // Inverted isolated split: the text between matches forms the pieces.
                        if r.lowerBound > last {
                            out.append(Piece(scalars: Array(p.scalars[last..<r.lowerBound]), atStart: p.atStart && last == 0))
                        }
                    } else {
                        if r.lowerBound > last {
                            out.append(Piece(scalars: Array(p.scalars[last..<r.lowerBound]), atStart: p.atStart && last == 0))
                        }
                        out.append(Piece(scalars: Array(p.scalars[r]), atStart: p.atStart && r.lowerBound == 0))
                    }
                    last = r.upperBound
                }
                if last < p.scalars.count {
                    out.append(Piece(scalars: Array(p.scalars[last...]), atStart: p.atStart && last == 0))
                }
            }
            return out
        case let .digits(individual):
            var out: [Piece] = []
            for p in pieces {
                var start = 0
                var i = 0
                let s = p.scalars
                while i < s.count {
                    if CharClass.isNumber(s[i]) {
                        if i > start { out.append(Piece(scalars: Array(s[start..<i]), atStart: p.atStart && start == 0)) }
                        var e = i + 1
                        if !individual { while e < s.count && CharClass.isNumber(s[e]) { e += 1 } }
                        out.append(Piece(scalars: Array(s[i..<e]), atStart: p.atStart && i == 0))
                        start = e
                        i = e
                    } else {
                        i += 1
                    }
                }
                if start < s.count { out.append(Piece(scalars: Array(s[start...]), atStart: p.atStart && start == 0)) }
            }
            return out
        case let .metaspace(rep, scheme, split):
            var out: [Piece] = []
            for p in pieces {
                var s = p.scalars.map { $0 == " " ? rep : $0 }
                let prepend: Bool
                switch scheme {
                case .always: prepend = s.first != rep
                case .first: prepend = s.first != rep && p.atStart
                case .never: prepend = false
                }
                if prepend { s.insert(rep, at: 0) }
                if split {
                    var start = 0
                    for i in 0..<s.count where s[i] == rep && i > start {
                        out.append(Piece(scalars: Array(s[start..<i]), atStart: p.atStart && start == 0))
                        start = i
                    }
                    if start < s.count { out.append(Piece(scalars: Array(s[start...]), atStart: p.atStart && start == 0)) }
                } else {
                    out.append(Piece(scalars: s, atStart: p.atStart))
                }
            }
            return out
        case .whitespaceSplit:
            var out: [Piece] = []
            for p in pieces {
                var cur: [Unicode.Scalar] = []
                var curStart = 0
                for (i, c) in p.scalars.enumerated() {
                    if CharClass.isSpace(c) {
                        if !cur.isEmpty { out.append(Piece(scalars: cur, atStart: p.atStart && curStart == 0)); cur = [] }
                    } else {
                        if cur.isEmpty { curStart = i }
                        cur.append(c)
                    }
                }
                if !cur.isEmpty { out.append(Piece(scalars: cur, atStart: p.atStart && curStart == 0)) }
            }
            return out
        }
    }
}

enum TemplateItem {
    case sequence
    case special(String)
}

struct PostProcessor {
    /// Items of the single-sequence template; empty means "just the sequence".
    var single: [TemplateItem] = [.sequence]
    /// Token ids for each special token the template names.
    var specialIds: [String: [Int]] = [:]

    func apply(_ ids: [Int]) -> [Int] {
        var out: [Int] = []
        out.reserveCapacity(ids.count + 2)
        for item in single {
            switch item {
            case .sequence: out.append(contentsOf: ids)
            case let .special(name): out.append(contentsOf: specialIds[name] ?? [])
            }
        }
        return out
    }
}

indirect enum Decoder {
    case byteLevel
    case replace(pattern: String, content: String)
    case byteFallback
    case fuse
    case strip(content: Unicode.Scalar, start: Int, stop: Int)
    case metaspace(replacement: Unicode.Scalar, prependScheme: PrependScheme)
    case sequence([Decoder])

    func decodeChain(_ tokens: [String]) -> [String] {
        switch self {
        case let .sequence(list):
            return list.reduce(tokens) { $1.decodeChain($0) }
        case .byteLevel:
            var bytes: [UInt8] = []
            for t in tokens {
                if let b = ByteLevelMap.unspell(t) { bytes.append(contentsOf: b) } else { bytes.append(contentsOf: Array(t.utf8)) }
            }
            return [String(decoding: bytes, as: UTF8.self)]
        case let .replace(pattern, content):
            return tokens.map { scalarReplace($0, pattern, content) }
        case .byteFallback:
            var out: [String] = []
            var pending: [UInt8] = []
            func flush() {
                guard !pending.isEmpty else { return }
                if let s = String(validating: pending, as: UTF8.self) {
                    out.append(s)
                } else {
                    // HF emits one U+FFFD per byte when the byte run is not valid UTF-8.
                    out.append(contentsOf: Array(repeating: "\u{FFFD}", count: pending.count))
                }
                pending.removeAll()
            }
            for t in tokens {
                if let b = Self.byteToken(t) { pending.append(b) } else { flush(); out.append(t) }
            }
            flush()
            return out
        case .fuse:
            return [tokens.joined()]
        case let .strip(content, start, stop):
            return tokens.map { t in
                let s = Array(t.unicodeScalars)
                var a = 0
                while a < min(start, s.count) && s[a] == content { a += 1 }
                var b = s.count
                var removed = 0
                while removed < stop && b > a && s[b - 1] == content { b -= 1; removed += 1 }
                var v = String.UnicodeScalarView()
                v.append(contentsOf: s[a..<b])
                return String(v)
            }
        case let .metaspace(rep, scheme):
            return tokens.enumerated().map { i, t in
                var s = scalarReplace(t, String(Character(rep)), " ")
                if i == 0 && scheme != .never && s.hasPrefix(" ") { s.removeFirst() }
                return s
            }
        }
    }

    /// `<0xAB>` -> 0xAB
    static func byteToken(_ t: String) -> UInt8? {
        let u = Array(t.utf8)
        guard u.count == 6, u[0] == 60, u[1] == 48, u[2] == 120, u[5] == 62 else { return nil }
        return UInt8(String(decoding: u[3...4], as: UTF8.self), radix: 16)
    }
}
