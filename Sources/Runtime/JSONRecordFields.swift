import Foundation
import Tokenization

/// A field of a JSON record that is missing or has the wrong type. Readers add the file and line.
public struct JSONFieldError: Error, CustomStringConvertible, Equatable {
    /// The field as a path: `prompt`, `messages[2].content`.
    public var field: String
    public var problem: String

    public init(field: String, problem: String) { self.field = field; self.problem = problem }

    public var description: String { "field '\(field)': \(problem)" }

    public static func missing(_ field: String) -> JSONFieldError { JSONFieldError(field: field, problem: "missing") }

    public static func mistyped(_ field: String, expected: String, found value: Any) -> JSONFieldError {
        JSONFieldError(field: field, problem: "expected \(expected), found \(JSONRecordFields.typeName(value))")
    }
}

/// Typed access to the fields of one parsed JSON object, with errors naming the field.
public enum JSONRecordFields {
    /// How JSONSerialization values are named in errors (JSON's own type names).
    public static func typeName(_ value: Any) -> String {
        switch value {
        case is NSNull: return "null"
        case is String: return "a string"
        case is [Any]: return "a list"
        case is [String: Any]: return "an object"
        case let n as NSNumber: return isBoolean(n) ? "a boolean" : "a number"
        default: return "\(type(of: value))"
        }
    }

    /// JSON true/false as JSONSerialization returns them (an NSNumber of Objective-C type `c`; `is Bool` would
    /// also hold for the numbers 0 and 1).
    public static func isBoolean(_ n: NSNumber) -> Bool { String(cString: n.objCType) == "c" }

    public static func string(_ obj: [String: Any], _ key: String) throws -> String {
        guard let v = obj[key] else { throw JSONFieldError.missing(key) }
        guard let s = v as? String else { throw JSONFieldError.mistyped(key, expected: "a string", found: v) }
        return s
    }

    /// nil when absent or null; an error when present with another type.
    public static func optionalString(_ obj: [String: Any], _ key: String) throws -> String? {
        guard let v = obj[key], !(v is NSNull) else { return nil }
        guard let s = v as? String else { throw JSONFieldError.mistyped(key, expected: "a string", found: v) }
        return s
    }

    /// A non-negative whole number (JSON 3 or 3.0, never a boolean). nil when absent or null.
    public static func optionalCount(_ obj: [String: Any], _ key: String) throws -> Int? {
        guard let v = obj[key], !(v is NSNull) else { return nil }
        guard let n = v as? NSNumber, !isBoolean(n),
              n.doubleValue >= 0, n.doubleValue == n.doubleValue.rounded(), n.doubleValue < 1e15 else {
            throw JSONFieldError.mistyped(key, expected: "a non-negative whole number", found: v)
        }
        return n.intValue
    }

    /// A chat conversation as the Hugging Face ecosystem writes it: a list of `{"role", "content"}` objects.
    /// `content` is a string, or a list of parts of which the `{"type": "text", "text"}` ones are joined
    /// (the multimodal message form); other parts are an error, since the models here read only text.
    public static func messages(_ value: Any, field: String) throws -> [ChatMessage] {
        guard let list = value as? [Any] else { throw JSONFieldError.mistyped(field, expected: "a list of messages", found: value) }
        var out: [ChatMessage] = []
        out.reserveCapacity(list.count)
        for (i, item) in list.enumerated() {
            let at = "\(field)[\(i)]"
            guard let m = item as? [String: Any] else { throw JSONFieldError.mistyped(at, expected: "an object", found: item) }
            guard let roleValue = m["role"] else { throw JSONFieldError.missing(at + ".role") }
            guard let role = roleValue as? String else { throw JSONFieldError.mistyped(at + ".role", expected: "a string", found: roleValue) }
            guard ["system", "user", "assistant"].contains(role) else {
                throw JSONFieldError(field: at + ".role", problem: "'\(role)' is not system, user or assistant")
            }
            guard let content = m["content"] else { throw JSONFieldError.missing(at + ".content") }
            out.append(ChatMessage(role: role, content: try text(of: content, field: at + ".content")))
        }
        return out
    }

    static func text(of content: Any, field: String) throws -> String {
        if let s = content as? String { return s }
        guard let parts = content as? [Any] else {
            throw JSONFieldError.mistyped(field, expected: "a string or a list of text parts", found: content)
        }
        var text = ""
        for (j, p) in parts.enumerated() {
            let at = "\(field)[\(j)]"
            guard let part = p as? [String: Any] else { throw JSONFieldError.mistyped(at, expected: "an object", found: p) }
            let type = part["type"] as? String
            guard type == "text" || (type == nil && part["text"] != nil) else {
                throw JSONFieldError(field: at + ".type", problem: "only text parts are supported, found '\(type ?? "none")'")
            }
            guard let t = part["text"] else { throw JSONFieldError.missing(at + ".text") }
            guard let s = t as? String else { throw JSONFieldError.mistyped(at + ".text", expected: "a string", found: t) }
            text += s
        }
        return text
    }
}

/// The top-level members of a JSON object, each with its value's exact source text, so a tool can pass the fields
/// it does not understand through unchanged (numbers keep their spelling, keys their order).
public enum JSONObjectMembers {
    /// Splits `bytes`, which must already be known to be a valid JSON object (e.g. parsed by JSONSerialization).
    /// Returns nil when the text does not have that shape after all.
    public static func split(_ bytes: [UInt8]) -> [(key: String, raw: String)]? {
        var i = 0
        let n = bytes.count
        func skipSpace() { while i < n, bytes[i] == 0x20 || bytes[i] == 0x09 || bytes[i] == 0x0A || bytes[i] == 0x0D { i += 1 } }
        /// Advances past a string starting at bytes[i] == '"'.
        func skipString() -> Bool {
            guard i < n, bytes[i] == 0x22 else { return false }
            i += 1
            while i < n {
                switch bytes[i] {
                case 0x5C: i += 2
                case 0x22: i += 1; return true
                default: i += 1
                }
            }
            return false
        }
        /// Advances past one value of any type.
        func skipValue() -> Bool {
            guard i < n else { return false }
            switch bytes[i] {
            case 0x22: return skipString()
            case 0x7B, 0x5B:
                var depth = 0
                while i < n {
                    switch bytes[i] {
                    case 0x22: if !skipString() { return false }; continue
                    case 0x7B, 0x5B: depth += 1
                    case 0x7D, 0x5D:
                        depth -= 1
                        if depth == 0 { i += 1; return true }
                    default: break
                    }
                    i += 1
                }
                return false
            default:
                // A number, true, false or null: up to the next delimiter.
                let start = i
                while i < n, ![0x2C, 0x7D, 0x5D, 0x20, 0x09, 0x0A, 0x0D].contains(bytes[i]) { i += 1 }
                return i > start
            }
        }
        skipSpace()
        guard i < n, bytes[i] == 0x7B else { return nil }
        i += 1
        var members: [(key: String, raw: String)] = []
        skipSpace()
        if i < n, bytes[i] == 0x7D { return members }
        while i < n {
            skipSpace()
            let keyStart = i
            guard skipString() else { return nil }
            guard let key = (try? JSONSerialization.jsonObject(with: Data(bytes[keyStart..<i]), options: .fragmentsAllowed)) as? String else { return nil }
            skipSpace()
            guard i < n, bytes[i] == 0x3A else { return nil }
            i += 1
            skipSpace()
            let valueStart = i
            guard skipValue() else { return nil }
            members.append((key, String(decoding: bytes[valueStart..<i], as: UTF8.self)))
            skipSpace()
            guard i < n else { return nil }
            if bytes[i] == 0x2C { i += 1; continue }
            if bytes[i] == 0x7D { return members }
            return nil
        }
        return nil
    }
}
