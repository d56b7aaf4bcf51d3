/// Failures of safety-neuron statistics, selection and neuron files.
/// File errors name the file; JSON errors carry the coding path of the offending value.
public enum SafetyNeuronsError: Error, CustomStringConvertible, Equatable {
    case invalidFile(path: String, reason: String)
    case io(path: String, reason: String)
    case insufficientSamples(layer: Int, group: String, count: Int)
    case inconsistentCounts(group: String, layer: Int, count: Int, expected: Int)
    case shapeMismatch(what: String, expected: [Int], found: [Int])
    case invalidArgument(String)

    public var description: String {
        switch self {
        case let .invalidFile(p, r): return "\(p): invalid neurons file: \(r)"
        case let .io(p, r): return "\(p): \(r)"
        case let .insufficientSamples(l, g, n):
            return "layer \(l): the \(g) group has \(n) samples; at least 2 per group are needed for variances"
        case let .inconsistentCounts(g, l, n, e):
            return "layer \(l): the \(g) group has \(n) samples but layer 0 has \(e); every layer must see every prompt"
        case let .shapeMismatch(w, e, f): return "\(w): shape \(f), expected \(e)"
        case let .invalidArgument(r): return "invalid argument: \(r)"
        }
    }
}
