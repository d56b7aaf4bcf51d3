import Foundation

/// Description of one tensor in a GGUF file.
///
/// `dims` is in GGUF order (ne0 first, ne0 is the fastest-varying index); `shape` is the
/// reversed, row-major view (a weight with ne0 = in, ne1 = out has shape [out, in]).
/// `offset` is relative to the data section, `absoluteOffset` to the file start.
public struct GGUFTensorInfo: Equatable, Sendable {
    public let name: String
    public let dims: [Int]
    public let type: GGMLType
    public let offset: Int
    public let absoluteOffset: Int
    public let elementCount: Int
    public let byteCount: Int

    /// Row-major shape (slowest dimension first).
    public var shape: [Int] { dims.reversed() }
}

/// A validated, memory-mapped GGUF (v2/v3) file.
///
/// Opening parses and checks the header, all metadata, and the tensor table (counts against
/// remaining bytes before any allocation, dims, sizes, alignment, bounds, overlaps, duplicates).
/// Tensor data is not touched until `decodeFloats`/`floats`/`withRawBytes`; the mapping stays
/// alive as long as the object.
public final class GGUFFile: @unchecked Sendable {
    public static let defaultAlignment = 32
    static let maxDims = 4
    static let maxArrayDepth = 16
    /// Cap on metadata array elements across the whole file. Each decoded element costs ~24 bytes
    /// of memory, so a hostile multi-GB byte array must not be expanded; real models (vocab,
    /// scores, merges) stay far below this.
    public static let maxMetadataElements = 1 << 24

    public let path: String
    public let version: Int
    public let metadata: [String: GGUFValue]
    /// Metadata keys in file order.
    public let metadataKeys: [String]
    /// Tensor infos in file order.
    public let tensorInfos: [GGUFTensorInfo]
    public let alignment: Int
    /// Absolute file offset of the (aligned) tensor data section.
    public let dataOffset: Int
    public var fileSize: Int { storage.count }

    private let storage: MappedFile
    private let index: [String: Int]

    public convenience init(path: String) throws {
        try self.init(storage: MappedFile(path: path))
    }

    /// Parses an in-memory image (tests, fuzzing). `label` is used in errors.
    public convenience init(bytes: [UInt8], label: String = "<memory>.gguf") throws {
        try self.init(storage: MappedFile(copying: bytes, label: label))
    }

    init(storage: MappedFile) throws {
        self.storage = storage
        path = storage.path
        var c = ByteCursor(storage.bytes, path: path)

        let magic = try c.read(UInt32.self, "magic")
        guard magic == 0x4655_4747 else { // "GGUF" little-endian
            throw c.fail(at: 0, "not a GGUF file (bad magic)")
        }
        let v = try c.read(UInt32.self, "version")
        guard v == 2 || v == 3 else {
            if v.byteSwapped == 2 || v.byteSwapped == 3 {
                throw c.fail(.unsupported, at: 4, "big-endian GGUF is not supported")
            }
            throw c.fail(.unsupported, at: 4, "unsupported GGUF version \(v) (need 2 or 3)")
        }
        version = Int(v)
        let nTensorsRaw = try c.read(UInt64.self, "tensor count")
        let nKVRaw = try c.read(UInt64.self, "metadata count")
        // Each KV needs ≥ 8 (key length) + 4 (type) + 1 bytes; each tensor info ≥ 32 bytes.
        guard nKVRaw <= UInt64(c.remaining / 13) else {
            throw c.fail(.truncated, at: 16, "metadata count \(nKVRaw) cannot fit in the remaining \(c.remaining) bytes")
        }
        guard nTensorsRaw <= UInt64(c.remaining / 32) else {
            throw c.fail(.truncated, at: 8, "tensor count \(nTensorsRaw) cannot fit in the remaining \(c.remaining) bytes")
        }
        let nKV = Int(nKVRaw), nTensors = Int(nTensorsRaw)

        var budget = Self.maxMetadataElements
        var meta = [String: GGUFValue](minimumCapacity: nKV)
        var keys = [String]()
        keys.reserveCapacity(nKV)
        for _ in 0..<nKV {
            let at = c.pos
            let key = try Self.readString(&c, "metadata key", strict: true)
            let rawType = try c.read(UInt32.self, "type of '\(key)'")
            guard let t = GGUFValueType(rawValue: rawType) else {
                throw c.fail(.unsupported, at: c.pos - 4, "metadata '\(key)' has unknown value type \(rawType)")
            }
            let value = try Self.readValue(&c, t, key: key, depth: 0, budget: &budget)
            guard meta.updateValue(value, forKey: key) == nil else {
                throw c.fail(at: at, "duplicate metadata key '\(key)'")
            }
            keys.append(key)
        }
        metadata = meta
        metadataKeys = keys

        var align = Self.defaultAlignment
        if let a = meta["general.alignment"] {
            guard let ai = a.intValue, ai > 0, ai <= 1 << 20, ai & (ai - 1) == 0 else {
                throw c.fail(at: nil, "general.alignment \(a) is not a power of two in 1...2^20")
            }
            align = ai
        }
        alignment = align

        struct Raw { let name: String; let dims: [Int]; let type: GGMLType; let offset: Int; let count: Int; let bytes: Int; let at: Int }
        var raws = [Raw]()
        raws.reserveCapacity(nTensors)
        var names = [String: Int](minimumCapacity: nTensors)
        for i in 0..<nTensors {
            let at = c.pos
            let name = try Self.readString(&c, "tensor name", strict: true)
            let nd = try c.read(UInt32.self, "n_dims of '\(name)'")
            guard nd >= 1 && nd <= UInt32(Self.maxDims) else {
                throw c.fail(at: c.pos - 4, "tensor '\(name)' has \(nd) dimensions (allowed 1...\(Self.maxDims))")
            }
            var dims = [Int]()
            var count = 1
            for _ in 0..<Int(nd) {
                let d = try c.read(UInt64.self, "dims of '\(name)'")
                guard d > 0, d <= UInt64(Int.max) else {
                    throw c.fail(at: c.pos - 8, "tensor '\(name)' has invalid dimension \(d)")
                }
                let (p, o) = count.multipliedReportingOverflow(by: Int(d))
                guard !o else { throw c.fail(at: c.pos - 8, "tensor '\(name)' element count overflows") }
                count = p
                dims.append(Int(d))
            }
            let tid = try c.read(UInt32.self, "type of '\(name)'")
            guard let type = GGMLType(rawValue: tid) else {
                throw c.fail(.unsupported, at: c.pos - 4, "tensor '\(name)' has unknown type id \(tid)")
            }
            guard dims[0] % type.blockSize == 0, let nbytes = type.byteCount(elements: count) else {
                throw c.fail(at: c.pos - 4, "tensor '\(name)' row length \(dims[0]) is not a multiple of the \(type.name) block size \(type.blockSize)")
            }
            let off = try c.read(UInt64.self, "offset of '\(name)'")
            guard off <= UInt64(Int.max / 2) else {
                throw c.fail(at: c.pos - 8, "tensor '\(name)' offset \(off) is absurd")
            }
            guard Int(off) % align == 0 else {
                throw c.fail(at: c.pos - 8, "tensor '\(name)' offset \(off) is not a multiple of the alignment \(align)")
            }
            guard names.updateValue(i, forKey: name) == nil else {
                throw c.fail(at: at, "duplicate tensor name '\(name)'")
            }
            raws.append(Raw(name: name, dims: dims, type: type, offset: Int(off), count: count, bytes: nbytes, at: at))
        }
        let (padded, o) = c.pos.addingReportingOverflow(align - 1)
        guard !o else { throw c.fail(at: nil, "data offset overflows") }
        let dataStart = padded / align * align
        dataOffset = dataStart
        let size = storage.count

        var infos = [GGUFTensorInfo]()
        infos.reserveCapacity(nTensors)
        for r in raws {
            let abs = dataStart + r.offset
            let (end, o) = abs.addingReportingOverflow(r.bytes)
            guard !o, end <= size else {
                throw ModelFileError(.truncated, path: path, offset: r.at,
                    "tensor '\(r.name)' data [offset \(abs), \(r.bytes) bytes] extends past end of file (size \(size))")
            }
            infos.append(GGUFTensorInfo(name: r.name, dims: r.dims, type: r.type, offset: r.offset,
                                        absoluteOffset: abs, elementCount: r.count, byteCount: r.bytes))
        }
        let sorted = infos.sorted { $0.offset < $1.offset }
        if sorted.count > 1 {
            for k in 1..<sorted.count {
                let a = sorted[k - 1], b = sorted[k]
                if a.offset + a.byteCount > b.offset {
                    throw ModelFileError(.malformed, path: path, offset: b.absoluteOffset,
                        "tensor '\(b.name)' data overlaps tensor '\(a.name)'")
                }
            }
        }
        tensorInfos = infos
        index = names
    }

    public func tensorInfo(_ name: String) -> GGUFTensorInfo? {
        index[name].map { tensorInfos[$0] }
    }

    func info(orThrow name: String) throws -> GGUFTensorInfo {
        guard let t = tensorInfo(name) else {
            throw ModelFileError(.notFound, path: path, "no tensor named '\(name)'")
        }
        return t
    }

    /// Calls `body` with the tensor's raw stored bytes (valid only inside `body`).
    public func withRawBytes<R>(_ name: String, _ body: (UnsafeRawBufferPointer) throws -> R) throws -> R {
        let t = try info(orThrow: name)
        return try body(UnsafeRawBufferPointer(rebasing: storage.bytes[t.absoluteOffset ..< t.absoluteOffset + t.byteCount]))
    }

    /// Dequantizes tensor `name` into `out` (which must hold at least `elementCount` floats),
    /// in GGUF's natural order (ne0 fastest).
    public func decodeFloats(_ name: String, into out: UnsafeMutableBufferPointer<Float>) throws {
        let t = try info(orThrow: name)
        guard t.type.canDecode else {
            throw ModelFileError(.unsupported, path: path, offset: t.absoluteOffset,
                                 "tensor '\(name)' has type \(t.type.name), which cannot be dequantized")
        }
        guard out.count >= t.elementCount else {
            throw ModelFileError(.invalidArgument, path: path,
                                 "output for tensor '\(name)' holds \(out.count) floats, need \(t.elementCount)")
        }
        let raw = UnsafeRawBufferPointer(rebasing: storage.bytes[t.absoluteOffset ..< t.absoluteOffset + t.byteCount])
        try Dequantize.decode(type: t.type, bytes: raw, count: t.elementCount, into: out, label: path)
    }

    /// Dequantizes tensor `name` into a new array (ne0 fastest; row-major over `shape`).
    public func floats(_ name: String) throws -> [Float] {
        let t = try info(orThrow: name)
        var out = [Float](repeating: 0, count: t.elementCount)
        try out.withUnsafeMutableBufferPointer { try decodeFloats(name, into: $0) }
        return out
    }

    // MARK: parsing helpers

    static func readString(_ c: inout ByteCursor, _ what: String, strict: Bool) throws -> String {
        let at = c.pos
        let n = try c.read(UInt64.self, "\(what) length")
        guard n <= UInt64(c.remaining) else {
            throw c.fail(.truncated, at: at, "\(what) length \(n) exceeds the remaining \(c.remaining) bytes")
        }
        let bytes = UnsafeRawBufferPointer(rebasing: c.bytes[c.pos ..< c.pos + Int(n)])
        c.pos += Int(n)
        if strict {
            guard let s = String(validating: bytes.bindMemory(to: UInt8.self), as: UTF8.self) else {
                throw c.fail(at: at, "\(what) is not valid UTF-8")
            }
            return s
        }
        return String(decoding: bytes.bindMemory(to: UInt8.self), as: UTF8.self)
    }

    static func readValue(_ c: inout ByteCursor, _ t: GGUFValueType, key: String, depth: Int, budget: inout Int) throws -> GGUFValue {
        let what = "value of '\(key)'"
        switch t {
        case .uint8: return .uint8(try c.read(UInt8.self, what))
        case .int8: return .int8(try c.read(Int8.self, what))
        case .uint16: return .uint16(try c.read(UInt16.self, what))
        case .int16: return .int16(try c.read(Int16.self, what))
        case .uint32: return .uint32(try c.read(UInt32.self, what))
        case .int32: return .int32(try c.read(Int32.self, what))
        case .uint64: return .uint64(try c.read(UInt64.self, what))
        case .int64: return .int64(try c.read(Int64.self, what))
        case .float32: return .float32(Float(bitPattern: try c.read(UInt32.self, what)))
        case .float64: return .float64(Double(bitPattern: try c.read(UInt64.self, what)))
        case .bool:
            let b = try c.read(UInt8.self, what)
            guard b <= 1 else { throw c.fail(at: c.pos - 1, "bool \(what) has invalid byte \(b)") }
            return .bool(b == 1)
        case .string: return .string(try readString(&c, what, strict: false))
        case .array:
            guard depth < maxArrayDepth else { throw c.fail(.malformed, "arrays in '\(key)' nested deeper than \(maxArrayDepth)") }
            let rawType = try c.read(UInt32.self, "array type of '\(key)'")
            guard let et = GGUFValueType(rawValue: rawType) else {
                throw c.fail(.unsupported, at: c.pos - 4, "array '\(key)' has unknown element type \(rawType)")
            }
            let at = c.pos
            let n = try c.read(UInt64.self, "array length of '\(key)'")
            guard n <= UInt64(c.remaining / et.minSize) else {
                throw c.fail(.truncated, at: at, "array '\(key)' of \(n) \(et) elements cannot fit in the remaining \(c.remaining) bytes")
            }
            guard n <= UInt64(budget) else {
                throw c.fail(.unsupported, at: at, "array '\(key)' of \(n) elements exceeds the metadata limit of \(maxMetadataElements) elements per file")
            }
            budget -= Int(n)
            var a = [GGUFValue]()
            a.reserveCapacity(Int(n))
            for _ in 0..<Int(n) { a.append(try readValue(&c, et, key: key, depth: depth + 1, budget: &budget)) }
            return .array(et, a)
        }
    }
}
