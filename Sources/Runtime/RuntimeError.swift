/// Errors of model loading and export. Every case names the file it is about.
public enum RuntimeError: Error, CustomStringConvertible {
    case badFile(path: String, reason: String)
    case unsupported(path: String, reason: String)
    case missingFile(path: String)
    case io(path: String, reason: String)
    case invalidArgument(String)

    public var description: String {
        switch self {
        case let .badFile(p, r): return "\(p): \(r)"
        case let .unsupported(p, r): return "\(p): unsupported \(r)"
        case let .missingFile(p): return "\(p): no such file or folder"
        case let .io(p, r): return "\(p): \(r)"
        case let .invalidArgument(r): return r
        }
    }

    /// The message without the path, for errors that re-wrap it under their own type.
    public var reason: String {
        switch self {
        case let .badFile(_, r), let .io(_, r): return r
        case let .unsupported(_, r): return "unsupported \(r)"
        case .missingFile: return "no such file or folder"
        case let .invalidArgument(r): return r
        }
    }
}
