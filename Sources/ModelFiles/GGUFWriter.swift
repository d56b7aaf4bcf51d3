import Foundation

/// Builds small GGUF v3 files in memory: metadata of every kind plus F32/F16 tensors (or raw bytes of any
/// type). Used by tests and for crafting hostile inputs; `GGUFStreamWriter` writes model-sized files.
/// Tensors are laid out in insertion order, each aligned to `alignment`.
public struct GGUFWriter {
    public var version: UInt32 = 3
    public var alignment: Int
    public private(set) var metadata: [(String, GGUFValue)] = []
    private var tensors: [(name: String, dims: [Int], type: GGMLType, data: [UInt8])] = []

    public init(alignment: Int = GGUFFile.defaultAlignment) {
        self.alignment = alignment
    }

    public mutating func add(_ key: String, _ value: GGUFValue) {
        metadata.append((key, value))
    }

    /// Adds a tensor from raw stored bytes; `dims` is ne0-first.
    public mutating func addTensor(name: String, dims: [Int], type: GGMLType, rawData: [UInt8]) {
        tensors.append((name, dims, type, rawData))
    }

    /// Adds a float tensor stored as F32 or F16; `shape` is row-major (slowest first).
    public mutating func addTensor(name: String, shape: [Int], values: [Float], type: GGMLType = .f32) throws {
        guard !shape.isEmpty, shape.allSatisfy({ $0 > 0 }),
              let n = SafetensorsWriter.checkedProduct(shape), n == values.count else {
            throw ModelFileError(.invalidArgument, path: name, "shape \(shape) does not match \(values.count) values")
        }
        var raw = [UInt8]()
        switch type {
        case .f32:
            raw.reserveCapacity(values.count * 4)
            for v in values { withUnsafeBytes(of: v.bitPattern.littleEndian) { raw.append(contentsOf: $0) } }
        case .f16:
            raw.reserveCapacity(values.count * 2)
            for v in values { withUnsafeBytes(of: Float16(v).bitPattern.littleEndian) { raw.append(contentsOf: $0) } }
        default:
            throw ModelFileError(.unsupported, path: name, "GGUFWriter encodes only F32/F16, got \(type.name)")
        }
        tensors.append((name, Array(shape.reversed()), type, raw))
    }

    /// The complete file image.
    public func serialize() -> [UInt8] {
        var out = serializeHeader(tensors: tensors.map { ($0.name, $0.dims, $0.type, $0.data.count) })
        let dataStart = out.count
        for (i, t) in tensors.enumerated() {
            let want = dataStart + Self.offsets(tensors.map { $0.data.count }, alignment: alignment)[i]
            out.append(contentsOf: [UInt8](repeating: 0, count: want - out.count))
            out.append(contentsOf: t.data)
        }
        return out
    }

    /// Each tensor's offset in the data section: in order, each aligned to `alignment`.
    static func offsets(_ sizes: [Int], alignment: Int) -> [Int] {
        var offset = 0
        var out: [Int] = []
        for s in sizes {
            out.append(offset)
            offset = (offset + s + alignment - 1) / alignment * alignment
        }
        return out
    }

    /// Magic, version, counts, this writer's metadata and the table of `tensors` (name, ne0-first dims, type,
    /// stored byte count), padded to the start of the data section.
    public func serializeHeader(tensors: [(name: String, dims: [Int], type: GGMLType, bytes: Int)]) -> [UInt8] {
        var out = [UInt8]()
        func u32(_ v: UInt32) { withUnsafeBytes(of: v.littleEndian) { out.append(contentsOf: $0) } }
        func u64(_ v: UInt64) { withUnsafeBytes(of: v.littleEndian) { out.append(contentsOf: $0) } }
        func str(_ s: String) { let u = Array(s.utf8); u64(UInt64(u.count)); out.append(contentsOf: u) }
        func payload(_ v: GGUFValue) {
            switch v {
            case .uint8(let x): out.append(x)
            case .int8(let x): out.append(UInt8(bitPattern: x))
            case .uint16(let x): withUnsafeBytes(of: x.littleEndian) { out.append(contentsOf: $0) }
            case .int16(let x): withUnsafeBytes(of: x.littleEndian) { out.append(contentsOf: $0) }
            case .uint32(let x): u32(x)
            case .int32(let x): u32(UInt32(bitPattern: x))
            case .uint64(let x): u64(x)
            case .int64(let x): u64(UInt64(bitPattern: x))
            case .float32(let x): u32(x.bitPattern)
            case .float64(let x): u64(x.bitPattern)
            case .bool(let b): out.append(b ? 1 : 0)
            case .string(let s): str(s)
            case .array(let t, let a):
                u32(t.rawValue); u64(UInt64(a.count))
                for e in a { payload(e) }
            }
        }
        out.append(contentsOf: Array("GGUF".utf8))
        u32(version)
        u64(UInt64(tensors.count))
        u64(UInt64(metadata.count))
        for (k, v) in metadata { str(k); u32(v.type.rawValue); payload(v) }
        let offsets = Self.offsets(tensors.map(\.bytes), alignment: alignment)
        for (i, t) in tensors.enumerated() {
            str(t.name)
            u32(UInt32(t.dims.count))
            for d in t.dims { u64(UInt64(d)) }
            u32(t.type.rawValue)
            u64(UInt64(offsets[i]))
        }
        let dataStart = (out.count + alignment - 1) / alignment * alignment
        out.append(contentsOf: [UInt8](repeating: 0, count: dataStart - out.count))
        return out
    }

    /// Writes the file atomically.
    public func write(path: String) throws {
        let w = try AtomicWriter(path: path)
        try w.write(serialize())
        try w.commit()
    }
}
