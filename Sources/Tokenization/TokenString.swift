/// A string compared by its exact UTF-8 bytes, as Python dictionaries and the tokenizers library compare
/// vocabulary entries. Swift's own `String` equality is canonical equivalence (U+037E GREEK QUESTION MARK equals
/// ";", a precomposed "é" equals "e" + U+0301), which would fold distinct vocabulary tokens into one id and let
/// the word cache answer for a differently spelled word.
struct TokenString: Hashable, Sendable {
    let string: String
    init(_ s: String) { string = s }

    static func == (a: TokenString, b: TokenString) -> Bool { a.string.utf8.elementsEqual(b.string.utf8) }

    func hash(into h: inout Hasher) {
        var s = string
        s.withUTF8 { h.combine(bytes: UnsafeRawBufferPointer($0)) }
    }
}

/// Token → id, keyed by exact spelling.
typealias Vocabulary = [TokenString: Int]

extension Dictionary where Key == TokenString {
    subscript(_ s: String) -> Value? {
        get { self[TokenString(s)] }
        set { self[TokenString(s)] = newValue }
    }
}
