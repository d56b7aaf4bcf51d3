import Foundation

/// Reads `model.vocab` and `model.merges` of a `tokenizer.json` straight from its bytes, keeping every string
/// exactly as written.
///
/// JSONSerialization hands objects back as Swift dictionaries, whose String keys compare by canonical equivalence:
/// Gemma's vocabulary holds both a precomposed and a decomposed spelling of some Bengali letters, and ";" beside
/// U+037E, and a dictionary keeps only one of each pair. Foundation on Linux also drops a leading U+FEFF from every
/// string it decodes, and Gemma has tokens made of it. The rest of the file is still read with JSONSerialization
/// (which has already validated it).
struct VocabularyScanner {
    private let bytes: [UInt8]
    private var i = 0
    private let source: String

    /// `model.vocab` as (token, id) entries in file order and `model.merges` as written (each a "a b" string or an
    /// [a, b] pair), each nil when absent.
    struct Model { var vocab: [(String, Int)]?; var merges: [Any]? }

    static func model(_ data: Data, source: String) throws -> Model {
        var s = VocabularyScanner(bytes: [UInt8](data), source: source)
        return try s.rootModel()
    }

    private init(bytes: [UInt8], source: String) { self.bytes = bytes; self.source = source }

    private func fail(_ why: String) -> TokenizerError {
        .invalidJSON(source: source, reason: "\(why) at byte \(i)")
    }

    private mutating func skipSpace() {
        while i < bytes.count, [0x20, 0x09, 0x0A, 0x0D].contains(bytes[i]) { i += 1 }
    }

    private mutating func expect(_ c: UInt8) throws {
        skipSpace()
        guard i < bytes.count, bytes[i] == c else { throw fail("expected '\(Character(Unicode.Scalar(c)))'") }
        i += 1
    }

    private mutating func peek() -> UInt8? { skipSpace(); return i < bytes.count ? bytes[i] : nil }

    /// Walks the members of the object at the cursor; `body` consumes each value (it must read or skip it).
    private mutating func members(_ body: (inout VocabularyScanner, String) throws -> Void) throws {
        try expect(UInt8(ascii: "{"))
        if peek() == UInt8(ascii: "}") { i += 1; return }
        while true {
            let key = try string()
            try expect(UInt8(ascii: ":"))
            try body(&self, key)
            skipSpace()
            guard i < bytes.count else { throw fail("unterminated object") }
            if bytes[i] == UInt8(ascii: ",") { i += 1; continue }
            if bytes[i] == UInt8(ascii: "}") { i += 1; return }
            throw fail("expected ',' or '}'")
        }
    }

    private mutating func rootModel() throws -> Model {
        var found = Model()
        try members { s, key in
            guard key == "model", s.peek() == UInt8(ascii: "{") else { return try s.skipValue() }
            try s.members { s, key in
                if key == "vocab", s.peek() == UInt8(ascii: "{") {
                    var out: [(String, Int)] = []
                    try s.members { s, token in out.append((token, try s.integer())) }
                    found.vocab = out
                } else if key == "merges", s.peek() == UInt8(ascii: "[") {
                    found.merges = try s.mergeList()
                } else {
                    try s.skipValue()
                }
            }
        }
        return found
    }

    /// An array whose items are strings or arrays of strings.
    private mutating func mergeList() throws -> [Any] {
        var out: [Any] = []
        try expect(UInt8(ascii: "["))
        if peek() == UInt8(ascii: "]") { i += 1; return out }
        while true {
            if peek() == UInt8(ascii: "[") {
                i += 1
                var pair: [String] = []
                if peek() != UInt8(ascii: "]") {
                    while true {
                        pair.append(try string())
                        guard let c = peek() else { throw fail("unterminated merge") }
                        i += 1
                        if c == UInt8(ascii: "]") { break }
                        guard c == UInt8(ascii: ",") else { throw fail("expected ',' or ']' in a merge") }
                    }
                } else { i += 1 }
                out.append(pair)
            } else {
                out.append(try string())
            }
            guard let c = peek() else { throw fail("unterminated merges") }
            i += 1
            if c == UInt8(ascii: "]") { return out }
            guard c == UInt8(ascii: ",") else { throw fail("expected ',' or ']' in merges") }
        }
    }

    private mutating func integer() throws -> Int {
        skipSpace()
        let start = i
        if i < bytes.count, bytes[i] == UInt8(ascii: "-") { i += 1 }
        while i < bytes.count, (0x30...0x39).contains(bytes[i]) || [0x2E, 0x65, 0x45, 0x2B, 0x2D].contains(bytes[i]) { i += 1 }
        guard let text = String(bytes: bytes[start..<i], encoding: .utf8), let v = Double(text),
              v.rounded() == v, abs(v) < 1e15 else { throw fail("expected an integer id") }
        return Int(v)
    }

    private mutating func string() throws -> String {
        try expect(UInt8(ascii: "\""))
        var scalars = String.UnicodeScalarView()
        var run = i   // start of the current unescaped run
        func flush(_ s: inout VocabularyScanner, _ end: Int) throws {
            guard end > run else { return }
            // Not String(bytes:encoding:), which drops a leading U+FEFF (Gemma has tokens made of it). The file was
            // validated as UTF-8 by JSONSerialization already.
            scalars.append(contentsOf: String(decoding: s.bytes[run..<end], as: UTF8.self).unicodeScalars)
        }
        while true {
            guard i < bytes.count else { throw fail("unterminated string") }
            let c = bytes[i]
            if c == UInt8(ascii: "\"") { try flush(&self, i); i += 1; return String(scalars) }
            if c != UInt8(ascii: "\\") { i += 1; continue }
            try flush(&self, i)
            guard i + 1 < bytes.count else { throw fail("unterminated escape") }
            let e = bytes[i + 1]
            i += 2
            switch e {
            case UInt8(ascii: "\""): scalars.append("\"")
            case UInt8(ascii: "\\"): scalars.append("\\")
            case UInt8(ascii: "/"): scalars.append("/")
            case UInt8(ascii: "b"): scalars.append("\u{08}")
            case UInt8(ascii: "f"): scalars.append("\u{0C}")
            case UInt8(ascii: "n"): scalars.append("\n")
            case UInt8(ascii: "r"): scalars.append("\r")
            case UInt8(ascii: "t"): scalars.append("\t")
            case UInt8(ascii: "u"):
                var code = try hex4()
                if (0xD800..<0xDC00).contains(code), i + 1 < bytes.count, bytes[i] == UInt8(ascii: "\\"), bytes[i + 1] == UInt8(ascii: "u") {
                    i += 2
                    let low = try hex4()
                    guard (0xDC00..<0xE000).contains(low) else { throw fail("unpaired surrogate") }
                    code = 0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00)
                }
                guard let u = Unicode.Scalar(code) else { throw fail("invalid \\u escape") }
                scalars.append(u)
            default: throw fail("invalid escape")
            }
            run = i
        }
    }

    private mutating func hex4() throws -> UInt32 {
        guard i + 4 <= bytes.count, let text = String(bytes: bytes[i..<(i + 4)], encoding: .ascii),
              let v = UInt32(text, radix: 16) else { throw fail("invalid \\u escape") }
        i += 4
        return v
    }

    /// Skips one value of any kind, iteratively (a deeply nested hostile file cannot overflow the stack).
    private mutating func skipValue() throws {
        var depth = 0
        repeat {
            guard let c = peek() else { throw fail("unexpected end") }
            switch c {
            case UInt8(ascii: "\""): _ = try string()
            case UInt8(ascii: "{"), UInt8(ascii: "["): depth += 1; i += 1; continue
            case UInt8(ascii: "}"), UInt8(ascii: "]"): depth -= 1; i += 1
            case UInt8(ascii: ","), UInt8(ascii: ":"): i += 1; continue
            default:
                while i < bytes.count, ![0x2C, 0x7D, 0x5D, 0x20, 0x09, 0x0A, 0x0D].contains(bytes[i]) { i += 1 }
            }
            if depth > 0 { skipSpace(); if i < bytes.count, bytes[i] == UInt8(ascii: ",") || bytes[i] == UInt8(ascii: ":") { i += 1 } }
        } while depth > 0
        guard depth == 0 else { throw fail("unbalanced brackets") }
    }
}
