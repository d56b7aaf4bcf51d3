/// GGUF metadata value type ids as stored in the file.
public enum GGUFValueType: UInt32, Sendable, CaseIterable {
    case uint8 = 0, int8 = 1, uint16 = 2, int16 = 3, uint32 = 4, int32 = 5, float32 = 6
    case bool = 7, string = 8, array = 9, uint64 = 10, int64 = 11, float64 = 12

    /// Smallest number of bytes one value of this type can occupy (used to reject hostile counts
    /// before allocating).
    var minSize: Int {
        switch self {
        case .uint8, .int8, .bool: return 1
        case .uint16, .int16: return 2
        case .uint32, .int32, .float32: return 4
        case .uint64, .int64, .float64, .string: return 8
        case .array: return 12
        }
    }
}

/// One GGUF metadata value.
///
/// Keeps the exact stored type (so a writer can reproduce it); the accessors convert loosely:
/// `intValue` accepts any integer type that fits in `Int`, `doubleValue` any number, and the
/// array accessors return nil unless every element converts.
public enum GGUFValue: Equatable, Sendable, CustomStringConvertible {
    case uint8(UInt8), int8(Int8), uint16(UInt16), int16(Int16), uint32(UInt32), int32(Int32)
    case uint64(UInt64), int64(Int64), float32(Float), float64(Double), bool(Bool), string(String)
    /// Element type plus elements (all of that type; nested arrays carry their own element type).
    case array(GGUFValueType, [GGUFValue])

    public var type: GGUFValueType {
        switch self {
        case .uint8: return .uint8
        case .int8: return .int8
        case .uint16: return .uint16
        case .int16: return .int16
        case .uint32: return .uint32
        case .int32: return .int32
        case .uint64: return .uint64
        case .int64: return .int64
        case .float32: return .float32
        case .float64: return .float64
        case .bool: return .bool
        case .string: return .string
        case .array: return .array
        }
    }

    public var stringValue: String? { if case .string(let s) = self { return s }; return nil }
    public var boolValue: Bool? { if case .bool(let b) = self { return b }; return nil }

    public var intValue: Int? {
        switch self {
        case .uint8(let v): return Int(v)
        case .int8(let v): return Int(v)
        case .uint16(let v): return Int(v)
        case .int16(let v): return Int(v)
        case .uint32(let v): return Int(v)
        case .int32(let v): return Int(v)
        case .uint64(let v): return Int(exactly: v)
        case .int64(let v): return Int(v)
        default: return nil
        }
    }

    public var doubleValue: Double? {
        switch self {
        case .float32(let v): return Double(v)
        case .float64(let v): return v
        default: return intValue.map(Double.init)
        }
    }

    public var arrayValue: [GGUFValue]? { if case .array(_, let a) = self { return a }; return nil }

    public var stringArray: [String]? { compactAll(arrayValue) { $0.stringValue } }
    public var intArray: [Int]? { compactAll(arrayValue) { $0.intValue } }
    public var floatArray: [Float]? { compactAll(arrayValue) { $0.doubleValue.map(Float.init) } }

    private func compactAll<T>(_ a: [GGUFValue]?, _ f: (GGUFValue) -> T?) -> [T]? {
        guard let a else { return nil }
        var out = [T]()
        out.reserveCapacity(a.count)
        for v in a { guard let x = f(v) else { return nil }; out.append(x) }
        return out
    }

    public var description: String {
        switch self {
        case .string(let s): return "\"\(s)\""
        case .array(let t, let a):
            let head = a.prefix(8).map { $0.description }.joined(separator: ", ")
            return "[\(t) × \(a.count): \(head)\(a.count > 8 ? ", …" : "")]"
        case .bool(let b): return "\(b)"
        case .float32(let v): return "\(v)"
        case .float64(let v): return "\(v)"
        case .uint64(let v): return "\(v)"
        default: return intValue.map { "\($0)" } ?? "?"
        }
    }
}
