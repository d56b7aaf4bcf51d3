import Foundation

/// Every failure names the file or source the tokenizer came from, so a bad vocabulary is traceable.
public enum TokenizerError: Error, CustomStringConvertible, Equatable {
    case invalidJSON(source: String, reason: String)
    case missingField(source: String, field: String)
    case unsupported(source: String, what: String)
    case unknownSplitRegex(source: String, pattern: String)
    case badMerge(source: String, index: Int, merge: String, reason: String)
    case idOutOfRange(source: String, what: String, id: Int, count: Int)
    case countMismatch(source: String, what: String, expected: Int, actual: Int)
    case invalidVocabulary(source: String, reason: String)

    public var description: String {
        switch self {
        case let .invalidJSON(s, r): return "\(s): invalid tokenizer JSON: \(r)"
        case let .missingField(s, f): return "\(s): missing field '\(f)'"
        case let .unsupported(s, w): return "\(s): unsupported \(w)"
        case let .unknownSplitRegex(s, p): return "\(s): unsupported Split regex \(p.debugDescription) (only the GPT-2, Llama-3 and Qwen2 patterns are implemented)"
        case let .badMerge(s, i, m, r): return "\(s): merge #\(i) \(m.debugDescription): \(r)"
        case let .idOutOfRange(s, w, id, n): return "\(s): \(w) id \(id) out of range 0..<\(n)"
        case let .countMismatch(s, w, e, a): return "\(s): \(w) count \(a) does not match \(e)"
        case let .invalidVocabulary(s, r): return "\(s): invalid vocabulary: \(r)"
        }
    }
}

/// Splits a merge line on its single ASCII space. Done on UTF-8 because a space followed by a
/// combining character is one `Character`, which `String.split` would not cut.
func splitMerge(_ s: String) -> (String, String)? {
    let u = Array(s.utf8)
    guard let i = u.firstIndex(of: 0x20), u[(i + 1)...].firstIndex(of: 0x20) == nil else { return nil }
    return (String(decoding: u[..<i], as: UTF8.self), String(decoding: u[(i + 1)...], as: UTF8.self))
}
