import Foundation

/// Why rendering a chat template failed. Every case names the template, and (where known) the
/// 1-based line and column of the construct that failed, so a broken model file can be reported precisely.
public struct ChatTemplateError: Error, CustomStringConvertible, Equatable, Sendable {
    public enum Kind: String, Sendable {
        /// The template text is not valid (for this Jinja subset).
        case syntax
        /// A filter, test, tag or global this interpreter does not implement.
        case unsupported
        /// The template called `raise_exception(message)`; `reason` is exactly that message.
        case raised
        /// A type or value error at render time (e.g. `'a' < 1`, use of an undefined value).
        case runtime
        /// A safety limit (iterations, recursion, output or value size) was exceeded.
        case limitExceeded
        /// The inputs given to `render` are invalid (e.g. an empty conversation).
        case invalidInput
    }

    public let kind: Kind
    public let templateName: String
    /// 1-based; 0 when the error is not tied to a place in the template.
    public let line: Int
    public let column: Int
    public let reason: String

    public init(kind: Kind, templateName: String, line: Int, column: Int, reason: String) {
        self.kind = kind
        self.templateName = templateName
        self.line = line
        self.column = column
        self.reason = reason
    }

    public var description: String {
        let place = line > 0 ? "\(templateName):\(line):\(column)" : templateName
        switch kind {
        case .raised: return "\(place): template raised exception: \(reason)"
        default: return "\(place): \(kind.rawValue) error: \(reason)"
        }
    }
}

/// Internal error before the template name and position are attached.
struct JinjaFailure: Error {
    var kind: ChatTemplateError.Kind
    var reason: String
    var offset: Int?

    init(_ kind: ChatTemplateError.Kind, _ reason: String, at offset: Int? = nil) {
        self.kind = kind
        self.reason = reason
        self.offset = offset
    }
}
