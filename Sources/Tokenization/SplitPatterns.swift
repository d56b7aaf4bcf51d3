/// Hand-written matchers for the pre-tokenizer regexes used by GPT-2, Llama-3 and Qwen2.
/// Each reproduces the ordered alternation and backtracking of the Oniguruma pattern HF runs,
/// using Unicode general categories, so no regex engine is needed.
enum SplitPattern: String, Sendable {
    case gpt2
    case llama3
    case qwen2

    static let gpt2Regex = #"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"#
    static let llama3Regex = #"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"#
    static let qwen2Regex = #"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"#

    init?(regex: String) {
        switch regex {
        case Self.gpt2Regex: self = .gpt2
        case Self.llama3Regex: self = .llama3
        case Self.qwen2Regex: self = .qwen2
        default: return nil
        }
    }

    var regex: String {
        switch self {
        case .gpt2: return Self.gpt2Regex
        case .llama3: return Self.llama3Regex
        case .qwen2: return Self.qwen2Regex
        }
    }

    /// Ranges of the matches, left to right, non-overlapping (like `find_iter`).
    func matches(_ s: [Unicode.Scalar]) -> [Range<Int>] {
        var out: [Range<Int>] = []
        var i = 0
        let n = s.count
        while i < n {
            if let end = matchAt(s, i), end > i {
                out.append(i..<end)
                i = end
            } else {
                i += 1
            }
        }
        return out
    }

    private func matchAt(_ s: [Unicode.Scalar], _ i: Int) -> Int? {
        switch self {
        case .gpt2:
            if let e = contraction(s, i, caseInsensitive: false) { return e }
            if let e = optionalSpaceThenRun(s, i, CharClass.isLetter) { return e }
            if let e = optionalSpaceThenRun(s, i, CharClass.isNumber) { return e }
            if let e = optionalSpaceThenRun(s, i, CharClass.isOther) { return e }
            return whitespaceTail(s, i)
        case .llama3, .qwen2:
            if let e = contraction(s, i, caseInsensitive: true) { return e }
            // [^\r\n\p{L}\p{N}]?\p{L}+
            if CharClass.isLetter(s[i]) {
                return run(s, i, CharClass.isLetter)
            } else if !CharClass.isCRLF(s[i]) && !CharClass.isNumber(s[i]) && i + 1 < s.count && CharClass.isLetter(s[i + 1]) {
                return run(s, i + 1, CharClass.isLetter)
            }
            // \p{N}{1,3} or \p{N}
            if CharClass.isNumber(s[i]) {
                let limit = self == .llama3 ? 3 : 1
                var e = i
                while e < s.count && e - i < limit && CharClass.isNumber(s[e]) { e += 1 }
                return e
            }
            //  ?[^\s\p{L}\p{N}]+[\r\n]*
            if let e = optionalSpaceThenRun(s, i, CharClass.isOther) {
                var k = e
                while k < s.count && CharClass.isCRLF(s[k]) { k += 1 }
                return k
            }
            // \s*[\r\n]+ : the whitespace run, backtracked to end just after its last CR/LF.
            let wsEnd = run(s, i, CharClass.isSpace)
            var p = wsEnd - 1
            while p >= i {
                if CharClass.isCRLF(s[p]) { return p + 1 }
                p -= 1
            }
            return whitespaceTail(s, i)
        }
    }

    private func run(_ s: [Unicode.Scalar], _ i: Int, _ pred: (Unicode.Scalar) -> Bool) -> Int {
        var e = i
        while e < s.count && pred(s[e]) { e += 1 }
        return e
    }

    private func optionalSpaceThenRun(_ s: [Unicode.Scalar], _ i: Int, _ pred: (Unicode.Scalar) -> Bool) -> Int? {
        if s[i] == " " && i + 1 < s.count && pred(s[i + 1]) { return run(s, i + 1, pred) }
        if pred(s[i]) { return run(s, i, pred) }
        return nil
    }

    /// `\s+(?!\S)|\s+`: a whitespace run keeps its last character for the next word unless it ends the text.
    private func whitespaceTail(_ s: [Unicode.Scalar], _ i: Int) -> Int? {
        guard CharClass.isSpace(s[i]) else { return nil }
        let e = run(s, i, CharClass.isSpace)
        if e == s.count { return e }
        if e - 1 > i { return e - 1 }
        return e
    }

    private static let suffixes: [[Unicode.Scalar]] = ["s", "t", "re", "ve", "m", "ll", "d"].map { Array($0.unicodeScalars) }

    private func contraction(_ s: [Unicode.Scalar], _ i: Int, caseInsensitive: Bool) -> Int? {
        guard s[i] == "'" else { return nil }
        for suf in Self.suffixes {
            guard i + suf.count < s.count else { continue }
            var ok = true
            for (k, c) in suf.enumerated() {
                var x = s[i + 1 + k]
                if caseInsensitive, x.value >= 65, x.value <= 90 { x = Unicode.Scalar(x.value + 32)! }
                if x != c { ok = false; break }
            }
            if ok { return i + 1 + suf.count }
        }
        return nil
    }
}

enum CharClass {
    @inline(__always) static func isLetter(_ c: Unicode.Scalar) -> Bool {
        if c.value < 128 { return (c.value | 0x20) >= 97 && (c.value | 0x20) <= 122 }
        switch c.properties.generalCategory {
        case .uppercaseLetter, .lowercaseLetter, .titlecaseLetter, .modifierLetter, .otherLetter: return true
        default: return false
        }
    }

    @inline(__always) static func isNumber(_ c: Unicode.Scalar) -> Bool {
        if c.value < 128 { return c.value >= 48 && c.value <= 57 }
        switch c.properties.generalCategory {
        case .decimalNumber, .letterNumber, .otherNumber: return true
        default: return false
        }
    }

    @inline(__always) static func isSpace(_ c: Unicode.Scalar) -> Bool {
        if c.value < 128 { return c.value == 32 || (c.value >= 9 && c.value <= 13) }
        return c.properties.isWhitespace
    }

    @inline(__always) static func isCRLF(_ c: Unicode.Scalar) -> Bool { c == "\r" || c == "\n" }

    @inline(__always) static func isOther(_ c: Unicode.Scalar) -> Bool { !isSpace(c) && !isLetter(c) && !isNumber(c) }

    /// Rust's `char::is_alphanumeric`, used by HF for single_word boundaries.
    static func isWordChar(_ c: Unicode.Scalar) -> Bool {
        c == "_" || c.properties.isAlphabetic || isNumber(c)
    }
}
