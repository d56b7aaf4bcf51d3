import Foundation

enum JTokenKind: Equatable {
    case text(String)
    case varBegin, varEnd, blockBegin, blockEnd
    case name(String)
    case string(String)
    case integer(Int)
    case float(Double)
    case op(String)
    case eof
}

struct JToken {
    var kind: JTokenKind
    var offset: Int
}

/// Splits a template into text and tag tokens with the whitespace rules transformers configures:
/// trim_blocks, lstrip_blocks, `-`/`+` modifiers, comments and raw blocks, newlines normalised to "\n"
/// and one trailing newline dropped (jinja2's keep_trailing_newline=False).
struct JinjaLexer {
    let src: [UInt8]
    var pos = 0
    var tokens: [JToken] = []
    /// True when the last consumed token ended a line (jinja2's `line_starting`), which lets
    /// lstrip_blocks strip indentation that directly follows a trimmed block end.
    var lineStarting = true
    /// Whitespace after a `-%}`/`-}}`/`-#}` must be removed from the next text.
    var stripNextText = false

    static let maxTokens = 2_000_000

    init(source: String) {
        var s = source.replacingOccurrences(of: "\r\n", with: "\n").replacingOccurrences(of: "\r", with: "\n")
        if s.hasSuffix("\n") { s.removeLast() }
        src = Array(s.utf8)
    }

    static func isSpace(_ c: UInt8) -> Bool {
        c == 0x20 || c == 0x09 || c == 0x0A || c == 0x0D || c == 0x0B || c == 0x0C
    }

    /// Python's str.isspace for one scalar; used where jinja applies `\s` or str.strip().
    static func isPyWhitespace(_ u: Unicode.Scalar) -> Bool {
        switch u.value {
        case 0x09...0x0D, 0x1C...0x20, 0x85, 0xA0, 0x1680, 0x2000...0x200A, 0x2028, 0x2029, 0x202F, 0x205F, 0x3000:
            return true
        default: return false
        }
    }

    mutating func emit(_ k: JTokenKind, _ off: Int) throws {
        guard tokens.count < JinjaLexer.maxTokens else {
            throw JinjaFailure(.limitExceeded, "template has too many tokens", at: off)
        }
        tokens.append(JToken(kind: k, offset: off))
    }

    func peek(_ i: Int) -> UInt8? { i < src.count ? src[i] : nil }

    /// Finds the next `{{`, `{%` or `{#` at or after `from`.
    func nextTagStart(from: Int) -> Int? {
        var i = from
        while i + 1 < src.count {
            if src[i] == UInt8(ascii: "{") {
                let c = src[i + 1]
                if c == UInt8(ascii: "{") || c == UInt8(ascii: "%") || c == UInt8(ascii: "#") { return i }
            }
            i += 1
        }
        return nil
    }

    mutating func tokenize() throws -> [JToken] {
        while pos < src.count {
            let tagStart = nextTagStart(from: pos)
            let textEnd = tagStart ?? src.count
            var text = Array(src[pos..<textEnd])
            let textOffset = pos
            if stripNextText {
                var k = 0
                while k < text.count, JinjaLexer.isSpace(text[k]) { k += 1 }
                text.removeFirst(k)
                stripNextText = false
            }
            guard let start = tagStart else {
                if !text.isEmpty { try emit(.text(String(decoding: text, as: UTF8.self)), textOffset) }
                pos = src.count
                break
            }
            let kindChar = src[start + 1]
            let modifier = peek(start + 2)
            let isVar = kindChar == UInt8(ascii: "{")
            if modifier == UInt8(ascii: "-") {
                while let last = text.last, JinjaLexer.isSpace(last) { text.removeLast() }
            } else if modifier != UInt8(ascii: "+") && !isVar {
                // lstrip_blocks: drop spaces/tabs between the line start and a block or comment tag.
                let lastNL = text.lastIndex(of: 0x0A)
                let lineStart = lastNL.map { $0 + 1 } ?? 0
                if lastNL != nil || lineStarting {
                    if lineStart < text.count, text[lineStart...].allSatisfy({ JinjaLexer.isSpace($0) && $0 != 0x0A }) {
                        text.removeSubrange(lineStart...)
                    }
                }
            }
            if !text.isEmpty { try emit(.text(String(decoding: text, as: UTF8.self)), textOffset) }
            var p = start + 2
            if modifier == UInt8(ascii: "-") || modifier == UInt8(ascii: "+") { p += 1 }
            if kindChar == UInt8(ascii: "#") {
                try lexComment(from: p, start: start)
            } else if isVar {
                try emit(.varBegin, start)
                pos = p
                try lexInside(isBlock: false)
            } else {
                if try lexRawIfPresent(from: p, start: start) { continue }
                try emit(.blockBegin, start)
                pos = p
                try lexInside(isBlock: true)
            }
        }
        try emit(.eof, src.count)
        return tokens
    }

    mutating func lexComment(from p: Int, start: Int) throws {
        var i = p
        while i + 1 < src.count {
            if src[i] == UInt8(ascii: "#") && src[i + 1] == UInt8(ascii: "}") {
                let dash = i > p && src[i - 1] == UInt8(ascii: "-")
                pos = i + 2
                finishTag(dash: dash, trimNewline: true)
                return
            }
            i += 1
        }
        throw JinjaFailure(.syntax, "missing end of comment tag", at: start)
    }

    /// After a tag end: `-` strips all following whitespace, otherwise trim_blocks eats one newline.
    mutating func finishTag(dash: Bool, trimNewline: Bool) {
        if dash {
            stripNextText = true
            lineStarting = false
        } else if trimNewline, pos < src.count, src[pos] == 0x0A {
            pos += 1
            lineStarting = true
        } else {
            lineStarting = false
        }
    }

    /// `{% raw %}...{% endraw %}` keeps its body verbatim.
    mutating func lexRawIfPresent(from p: Int, start: Int) throws -> Bool {
        var i = p
        while i < src.count, JinjaLexer.isSpace(src[i]) { i += 1 }
        guard i + 3 <= src.count, Array(src[i..<i + 3]) == Array("raw".utf8) else { return false }
        var j = i + 3
        if j < src.count, isNameChar(src[j]) { return false }
        while j < src.count, JinjaLexer.isSpace(src[j]) { j += 1 }
        var dash = false
        if j < src.count, src[j] == UInt8(ascii: "-") { dash = true; j += 1 }
        guard j + 1 < src.count, src[j] == UInt8(ascii: "%"), src[j + 1] == UInt8(ascii: "}") else {
            throw JinjaFailure(.syntax, "expected end of raw tag", at: start)
        }
        pos = j + 2
        finishTag(dash: dash, trimNewline: true)
        // Find {%[-+]? endraw [-]%}
        var k = pos
        while let t = nextTagStart(from: k) {
            guard src[t + 1] == UInt8(ascii: "%") else { k = t + 1; continue }
            var m = t + 2
            var leftDash = false
            if m < src.count, src[m] == UInt8(ascii: "-") { leftDash = true; m += 1 } else if m < src.count, src[m] == UInt8(ascii: "+") { m += 1 }
            while m < src.count, JinjaLexer.isSpace(src[m]) { m += 1 }
            guard m + 6 <= src.count, Array(src[m..<m + 6]) == Array("endraw".utf8) else { k = t + 1; continue }
            m += 6
            while m < src.count, JinjaLexer.isSpace(src[m]) { m += 1 }
            var rightDash = false
            if m < src.count, src[m] == UInt8(ascii: "-") { rightDash = true; m += 1 }
            guard m + 1 < src.count, src[m] == UInt8(ascii: "%"), src[m + 1] == UInt8(ascii: "}") else { k = t + 1; continue }
            var body = Array(src[pos..<t])
            if stripNextText {
                var q = 0
                while q < body.count, JinjaLexer.isSpace(body[q]) { q += 1 }
                body.removeFirst(q)
                stripNextText = false
            }
            if leftDash { while let last = body.last, JinjaLexer.isSpace(last) { body.removeLast() } }
            if !body.isEmpty { try emit(.text(String(decoding: body, as: UTF8.self)), pos) }
            pos = m + 2
            finishTag(dash: rightDash, trimNewline: true)
            return true
        }
        throw JinjaFailure(.syntax, "missing endraw", at: start)
    }

    func isNameStart(_ c: UInt8) -> Bool {
        (c >= 0x41 && c <= 0x5A) || (c >= 0x61 && c <= 0x7A) || c == UInt8(ascii: "_")
    }

    func isNameChar(_ c: UInt8) -> Bool { isNameStart(c) || (c >= 0x30 && c <= 0x39) }

    func isDigit(_ c: UInt8) -> Bool { c >= 0x30 && c <= 0x39 }

    static let operators3 = ["//", "**", "==", "!=", "<=", ">="]

    mutating func lexInside(isBlock: Bool) throws {
        var depth = 0
        let tagStart = pos
        while true {
            while pos < src.count, JinjaLexer.isSpace(src[pos]) { pos += 1 }
            guard pos < src.count else {
                throw JinjaFailure(.syntax, "unexpected end of template, expected end of \(isBlock ? "block" : "print") tag", at: tagStart)
            }
            let c = src[pos]
            if depth == 0 {
                let endChar = isBlock ? UInt8(ascii: "%") : UInt8(ascii: "}")
                if c == UInt8(ascii: "-"), peek(pos + 1) == endChar, peek(pos + 2) == UInt8(ascii: "}") {
                    try emit(isBlock ? .blockEnd : .varEnd, pos)
                    pos += 3
                    finishTag(dash: true, trimNewline: isBlock)
                    return
                }
                if c == endChar, peek(pos + 1) == UInt8(ascii: "}") {
                    try emit(isBlock ? .blockEnd : .varEnd, pos)
                    pos += 2
                    finishTag(dash: false, trimNewline: isBlock)
                    return
                }
            }
            let off = pos
            if isNameStart(c) {
                var e = pos
                while e < src.count, isNameChar(src[e]) { e += 1 }
                try emit(.name(String(decoding: src[pos..<e], as: UTF8.self)), off)
                pos = e
            } else if isDigit(c) {
                try lexNumber()
            } else if c == UInt8(ascii: "'") || c == UInt8(ascii: "\"") {
                try emit(.string(try lexString(quote: c)), off)
            } else {
                let two = pos + 1 < src.count ? String(decoding: src[pos..<pos + 2], as: UTF8.self) : ""
                if JinjaLexer.operators3.contains(two) {
                    try emit(.op(two), off)
                    pos += 2
                } else {
                    let one = String(UnicodeScalar(c))
                    guard "+-*/%~<>=()[]{},.:|".contains(one) else {
                        throw JinjaFailure(.syntax, "unexpected character '\(one)'", at: off)
                    }
                    if "([{".contains(one) { depth += 1 }
                    if ")]}".contains(one) {
                        guard depth > 0 else { throw JinjaFailure(.syntax, "unexpected '\(one)'", at: off) }
                        depth -= 1
                    }
                    try emit(.op(one), off)
                    pos += 1
                }
            }
        }
    }

    mutating func lexNumber() throws {
        let start = pos
        var isFloat = false
        func digits() { while pos < src.count, isDigit(src[pos]) || src[pos] == UInt8(ascii: "_") { pos += 1 } }
        digits()
        if pos + 1 < src.count, src[pos] == UInt8(ascii: "."), isDigit(src[pos + 1]) {
            isFloat = true
            pos += 1
            digits()
        }
        if pos < src.count, src[pos] == UInt8(ascii: "e") || src[pos] == UInt8(ascii: "E") {
            var q = pos + 1
            if q < src.count, src[q] == UInt8(ascii: "+") || src[q] == UInt8(ascii: "-") { q += 1 }
            if q < src.count, isDigit(src[q]) {
                isFloat = true
                pos = q
                digits()
            }
        }
        let text = String(decoding: src[start..<pos], as: UTF8.self).replacingOccurrences(of: "_", with: "")
        if isFloat {
            guard let d = Double(text) else { throw JinjaFailure(.syntax, "bad number '\(text)'", at: start) }
            try emit(.float(d), start)
        } else {
            guard let i = Int(text) else { throw JinjaFailure(.unsupported, "integer literal too large '\(text)'", at: start) }
            try emit(.integer(i), start)
        }
    }

    /// Python unicode-escape decoding of a string literal (what jinja2 applies to string tokens).
    mutating func lexString(quote: UInt8) throws -> String {
        let start = pos
        pos += 1
        var raw: [UInt8] = []
        while true {
            guard pos < src.count else { throw JinjaFailure(.syntax, "unterminated string literal", at: start) }
            let c = src[pos]
            if c == quote { pos += 1; break }
            if c == UInt8(ascii: "\\"), pos + 1 < src.count {
                raw.append(c)
                raw.append(src[pos + 1])
                pos += 2
                continue
            }
            raw.append(c)
            pos += 1
        }
        return JinjaLexer.unescape(raw)
    }

    static func unescape(_ raw: [UInt8]) -> String {
        var out = ""
        var i = 0
        var pending: [UInt8] = []
        func flush() {
            if !pending.isEmpty { out += String(decoding: pending, as: UTF8.self); pending.removeAll() }
        }
        func hex(_ n: Int) -> UInt32? {
            guard i + n <= raw.count, let v = UInt32(String(decoding: raw[i..<i + n], as: UTF8.self), radix: 16) else { return nil }
            return v
        }
        while i < raw.count {
            let c = raw[i]
            guard c == UInt8(ascii: "\\"), i + 1 < raw.count else { pending.append(c); i += 1; continue }
            let e = raw[i + 1]
            var simple: UInt8?
            switch e {
            case UInt8(ascii: "n"): simple = 0x0A
            case UInt8(ascii: "t"): simple = 0x09
            case UInt8(ascii: "r"): simple = 0x0D
            case UInt8(ascii: "\\"): simple = 0x5C
            case UInt8(ascii: "'"): simple = 0x27
            case UInt8(ascii: "\""): simple = 0x22
            case UInt8(ascii: "a"): simple = 0x07
            case UInt8(ascii: "b"): simple = 0x08
            case UInt8(ascii: "f"): simple = 0x0C
            case UInt8(ascii: "v"): simple = 0x0B
            case 0x0A: i += 2; continue  // backslash-newline is a line continuation
            default: break
            }
            if let s = simple { pending.append(s); i += 2; continue }
            let width: Int? = e == UInt8(ascii: "x") ? 2 : e == UInt8(ascii: "u") ? 4 : e == UInt8(ascii: "U") ? 8 : nil
            if let w = width {
                i += 2
                if let v = hex(w), let scalar = Unicode.Scalar(v) {
                    flush()
                    out.unicodeScalars.append(scalar)
                    i += w
                } else {
                    pending.append(contentsOf: [0x5C, e])
                }
                continue
            }
            if e >= 0x30 && e <= 0x37 {
                var v: UInt32 = 0
                var k = i + 1
                while k < raw.count, k < i + 4, raw[k] >= 0x30 && raw[k] <= 0x37 { v = v * 8 + UInt32(raw[k] - 0x30); k += 1 }
                flush()
                out.unicodeScalars.append(Unicode.Scalar(v) ?? "\u{FFFD}")
                i = k
                continue
            }
            // Unknown escapes keep their backslash, as in Python.
            pending.append(c)
            i += 1
        }
        flush()
        return out
    }
}

/// 1-based line and column (in Unicode scalars) of a UTF-8 byte offset in the normalised source.
func lineColumn(in src: [UInt8], offset: Int) -> (Int, Int) {
    var line = 1
    var lineStart = 0
    let end = min(max(offset, 0), src.count)
    var i = 0
    while i < end {
        if src[i] == 0x0A { line += 1; lineStart = i + 1 }
        i += 1
    }
    let col = String(decoding: src[lineStart..<end], as: UTF8.self).unicodeScalars.count + 1
    return (line, col)
}
