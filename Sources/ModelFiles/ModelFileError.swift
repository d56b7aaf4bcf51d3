import Foundation

/// Every failure raised by the ModelFiles layer.
///
/// Carries the file it concerns (path, or a short label for in-memory buffers), the byte offset
/// where the problem was detected when one makes sense, and a one-line human reason. The
/// `description` reads like "model.gguf: offset 123: tensor 'x' data ... extends past end of file".
public struct ModelFileError: Error, CustomStringConvertible, Equatable {
    /// What went wrong, coarsely, so callers can branch without parsing the message.
    public enum Kind: String, Sendable {
        case io              // open/stat/mmap/read/write/rename failed
        case truncated       // a field or data range runs past the end of the file
        case malformed       // structurally invalid (bad magic, bad JSON, overlapping ranges, ...)
        case unsupported     // a valid but unhandled version, value type, tensor type or dtype
        case notFound        // a requested tensor or key does not exist
        case invalidArgument // the caller passed inconsistent arguments (sizes, shapes)
    }

    public var kind: Kind
    public var path: String
    public var offset: Int?
    public var reason: String

    public init(_ kind: Kind, path: String, offset: Int? = nil, _ reason: String) {
        self.kind = kind
        self.path = path
        self.offset = offset
        self.reason = reason
    }

    public var description: String {
        let name = path
        // Reasons quote names read from the file; keep the message one line whatever those bytes are.
        let r = reason.replacingOccurrences(of: "\n", with: "\\n").replacingOccurrences(of: "\r", with: "\\r")
        if let offset { return "\(name): offset \(offset): \(r)" }
        return "\(name): \(r)"
    }
}
