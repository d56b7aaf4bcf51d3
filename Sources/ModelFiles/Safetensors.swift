import Foundation

/// Element types a safetensors header may name. All are accepted when validating a file;
/// only `canDecode` ones (F32, F16, BF16) can be read as floats — the rest (F64, integers,
/// BOOL, FP8 variants) are refused with `.unsupported`.
public enum SafetensorsDType: String, Sendable, CaseIterable {
    case F64, F32, F16, BF16, I64, I32, I16, I8, U64, U32, U16, U8, BOOL
    case F8_E4M3, F8_E5M2

    public var byteSize: Int {
        switch self {
        case .F64, .I64, .U64: return 8
        case .F32, .I32, .U32: return 4
        case .F16, .BF16, .I16, .U16: return 2
        case .I8, .U8, .BOOL, .F8_E4M3, .F8_E5M2: return 1
        }
    }

    public var canDecode: Bool { self == .F32 || self == .F16 || self == .BF16 }

    var ggml: GGMLType? {
        switch self {
        case .F32: return .f32
        case .F16: return .f16
        case .BF16: return .bf16
        default: return nil
        }
    }
}

/// One tensor's header entry. `shape` is row-major; `absoluteOffset` is from the file start.
public struct SafetensorsTensorInfo: Equatable, Sendable {
    public let name: String
    public let dtype: SafetensorsDType
    public let shape: [Int]
    public let absoluteOffset: Int
    public let byteCount: Int
    public var elementCount: Int { byteCount / dtype.byteSize }
}

/// A validated, memory-mapped `.safetensors` file.
///
/// Layout: 8-byte little-endian header length N, N bytes of JSON, then the data. Opening checks
/// N (≤ 100 MB and inside the file), the JSON shape, dtypes, that shape × dtype size equals each
/// `data_offsets` range, that ranges lie inside the data and do not overlap. An optional
/// `__metadata__` object of string → string is exposed as `metadata`.
public final class SafetensorsFile: @unchecked Sendable {
    public static let maxHeaderBytes = 100_000_000

    public let path: String
    public let metadata: [String: String]
    /// Tensor names sorted by data offset (file order).
    public let tensorNames: [String]
    private let infos: [String: SafetensorsTensorInfo]
    private let storage: MappedFile

    public convenience init(path: String) throws {
        try self.init(storage: MappedFile(path: path))
    }

    /// Parses an in-memory image (tests, fuzzing); `label` is used in errors.
    public convenience init(bytes: [UInt8], label: String = "<memory>.safetensors") throws {
        try self.init(storage: MappedFile(copying: bytes, label: label))
    }

    init(storage: MappedFile) throws {
        self.storage = storage
        path = storage.path
        let p = path
        func bad(_ kind: ModelFileError.Kind = .malformed, _ off: Int? = nil, _ reason: String) -> ModelFileError {
            ModelFileError(kind, path: p, offset: off, reason)
        }
        var c = ByteCursor(storage.bytes, path: path)
        let n = try c.read(UInt64.self, "header length")
        guard n <= UInt64(c.remaining) else {
            throw bad(.truncated, 0, "header length \(n) exceeds file size \(storage.count) - 8")
        }
        guard n <= UInt64(Self.maxHeaderBytes) else {
            throw bad(.malformed, 0, "header length \(n) exceeds the \(Self.maxHeaderBytes)-byte limit")
        }
        guard n >= 2 else { throw bad(.malformed, 0, "header length \(n) is too small for a JSON object") }
        let headerData = Data(UnsafeRawBufferPointer(rebasing: storage.bytes[8 ..< 8 + Int(n)]))
        let dataStart = 8 + Int(n)
        let dataSize = storage.count - dataStart
        guard headerData.first == UInt8(ascii: "{") else { throw bad(.malformed, 8, "header does not start with '{'") }
        let obj: Any
        do {
            obj = try JSONSerialization.jsonObject(with: headerData, options: [])
        } catch {
            throw bad(.malformed, 8, "header is not valid JSON")
        }
        guard let dict = obj as? [String: Any] else { throw bad(.malformed, 8, "header is not a JSON object") }

        var meta = [String: String]()
        var list = [SafetensorsTensorInfo]()
        list.reserveCapacity(dict.count)
        for (name, value) in dict {
            if name == "__metadata__" {
                guard let m = value as? [String: Any] else { throw bad(.malformed, 8, "__metadata__ is not an object") }
                for (k, v) in m {
                    guard let s = v as? String else { throw bad(.malformed, 8, "__metadata__ value for '\(k)' is not a string") }
                    meta[k] = s
                }
                continue
            }
            guard let t = value as? [String: Any] else { throw bad(.malformed, 8, "entry '\(name)' is not an object") }
            guard let ds = t["dtype"] as? String else { throw bad(.malformed, 8, "tensor '\(name)' has no dtype string") }
            guard let dtype = SafetensorsDType(rawValue: ds) else {
                throw bad(.unsupported, 8, "tensor '\(name)' has unknown dtype '\(ds)'")
            }
            guard let shapeAny = t["shape"] as? [Any] else { throw bad(.malformed, 8, "tensor '\(name)' has no shape array") }
            var shape = [Int]()
            var count = 1
            for s in shapeAny {
                guard let d = Self.jsonInt(s) else { throw bad(.malformed, 8, "tensor '\(name)' has invalid shape \(shapeAny)") }
                let (pr, o) = count.multipliedReportingOverflow(by: d)
                guard !o else { throw bad(.malformed, 8, "tensor '\(name)' element count overflows") }
                count = pr
                shape.append(d)
            }
            guard let offs = t["data_offsets"] as? [Any], offs.count == 2,
                  let b = Self.jsonInt(offs[0]), let e = Self.jsonInt(offs[1]), b <= e else {
                throw bad(.malformed, 8, "tensor '\(name)' has invalid data_offsets")
            }
            let (nbytes, o) = count.multipliedReportingOverflow(by: dtype.byteSize)
            guard !o, nbytes == e - b else {
                throw bad(.malformed, 8, "tensor '\(name)' shape \(shape) × \(dtype.rawValue) does not match data_offsets [\(b), \(e)]")
            }
            guard e <= dataSize else {
                throw bad(.truncated, dataStart + b,
                          "tensor '\(name)' data [offset \(dataStart + b), \(nbytes) bytes] extends past end of file (size \(storage.count))")
            }
            list.append(SafetensorsTensorInfo(name: name, dtype: dtype, shape: shape,
                                              absoluteOffset: dataStart + b, byteCount: nbytes))
        }
        list.sort { ($0.absoluteOffset, $0.byteCount, $0.name) < ($1.absoluteOffset, $1.byteCount, $1.name) }
        if list.count > 1 {
            for k in 1..<list.count where list[k - 1].absoluteOffset + list[k - 1].byteCount > list[k].absoluteOffset {
                throw bad(.malformed, list[k].absoluteOffset, "tensor '\(list[k].name)' data overlaps tensor '\(list[k - 1].name)'")
            }
        }
        metadata = meta
        tensorNames = list.map(\.name)
        infos = Dictionary(uniqueKeysWithValues: list.map { ($0.name, $0) })
    }

    /// Non-negative integers up to 2^53 only; JSON fractions and negatives are rejected.
    /// (Foundation on Linux cannot tell `true` from 1 here, so bools pass as 0/1: harmless.)
    static func jsonInt(_ v: Any) -> Int? {
        if let i = v as? Int { return i >= 0 ? i : nil }
        guard let n = v as? NSNumber else { return nil }
        let d = n.doubleValue
        guard d >= 0, d <= 9_007_199_254_740_992, d == d.rounded() else { return nil }
        return Int(d)
    }

    public func info(_ name: String) -> SafetensorsTensorInfo? { infos[name] }

    func info(orThrow name: String) throws -> SafetensorsTensorInfo {
        guard let t = infos[name] else { throw ModelFileError(.notFound, path: path, "no tensor named '\(name)'") }
        return t
    }

    /// Calls `body` with the tensor's raw stored bytes (valid only inside `body`).
    public func withRawBytes<R>(_ name: String, _ body: (UnsafeRawBufferPointer) throws -> R) throws -> R {
        let t = try info(orThrow: name)
        return try body(UnsafeRawBufferPointer(rebasing: storage.bytes[t.absoluteOffset ..< t.absoluteOffset + t.byteCount]))
    }

    /// Converts an F32/F16/BF16 tensor into `out` (row-major).
    public func decodeFloats(_ name: String, into out: UnsafeMutableBufferPointer<Float>) throws {
        let t = try info(orThrow: name)
        guard let g = t.dtype.ggml else {
            throw ModelFileError(.unsupported, path: path, offset: t.absoluteOffset,
                                 "tensor '\(name)' has dtype \(t.dtype.rawValue); only F32, F16 and BF16 can be read as floats")
        }
        guard out.count >= t.elementCount else {
            throw ModelFileError(.invalidArgument, path: path, "output for tensor '\(name)' holds \(out.count) floats, need \(t.elementCount)")
        }
        let raw = UnsafeRawBufferPointer(rebasing: storage.bytes[t.absoluteOffset ..< t.absoluteOffset + t.byteCount])
        try Dequantize.decode(type: g, bytes: raw, count: t.elementCount, into: out, label: path)
    }

    public func floats(_ name: String) throws -> [Float] {
        let t = try info(orThrow: name)
        var out = [Float](repeating: 0, count: t.elementCount)
        try out.withUnsafeMutableBufferPointer { try decodeFloats(name, into: $0) }
        return out
    }
}

/// A Hugging Face model folder's weights: either a single `model.safetensors` or shards listed
/// by `model.safetensors.index.json` (`weight_map`: tensor name → shard file). Names resolve
/// across shards; shard file names must be plain names inside the folder.
public final class SafetensorsCollection: @unchecked Sendable {
    public let folder: String
    /// All tensor names, sorted.
    public let tensorNames: [String]
    private let owner: [String: SafetensorsFile]

    public init(folder: String) throws {
        self.folder = folder
        let fm = FileManager.default
        let indexPath = folder + "/model.safetensors.index.json"
        let singlePath = folder + "/model.safetensors"
        var owner = [String: SafetensorsFile]()
        if fm.fileExists(atPath: indexPath) {
            let idx = try MappedFile(path: indexPath)
            guard idx.count <= SafetensorsFile.maxHeaderBytes else {
                throw ModelFileError(.malformed, path: indexPath, "index file is larger than \(SafetensorsFile.maxHeaderBytes) bytes")
            }
            let data = Data(idx.bytes)
            guard let obj = try? JSONSerialization.jsonObject(with: data, options: []) as? [String: Any],
                  let wm = obj["weight_map"] as? [String: Any] else {
                throw ModelFileError(.malformed, path: indexPath, "not a JSON object with a weight_map object")
            }
            var shards = [String: SafetensorsFile]()
            for (name, v) in wm {
                guard let file = v as? String, !file.isEmpty, !file.contains("/"), file != ".", file != ".." else {
                    throw ModelFileError(.malformed, path: indexPath, "weight_map entry for '\(name)' is not a plain file name")
                }
                let shard: SafetensorsFile
                if let s = shards[file] { shard = s } else {
                    shard = try SafetensorsFile(path: folder + "/" + file)
                    shards[file] = shard
                }
                guard shard.info(name) != nil else {
                    throw ModelFileError(.notFound, path: shard.path, "tensor '\(name)' listed in the index is missing from this shard")
                }
                owner[name] = shard
            }
        } else if fm.fileExists(atPath: singlePath) {
            let f = try SafetensorsFile(path: singlePath)
            for n in f.tensorNames { owner[n] = f }
        } else {
            throw ModelFileError(.notFound, path: folder, "neither model.safetensors nor model.safetensors.index.json found")
        }
        self.owner = owner
        tensorNames = owner.keys.sorted()
    }

    /// The shard holding `name`.
    public func file(for name: String) -> SafetensorsFile? { owner[name] }

    public func info(_ name: String) -> SafetensorsTensorInfo? { owner[name]?.info(name) }

    public func floats(_ name: String) throws -> [Float] {
        guard let f = owner[name] else { throw ModelFileError(.notFound, path: folder, "no tensor named '\(name)'") }
        return try f.floats(name)
    }

    public func decodeFloats(_ name: String, into out: UnsafeMutableBufferPointer<Float>) throws {
        guard let f = owner[name] else { throw ModelFileError(.notFound, path: folder, "no tensor named '\(name)'") }
        try f.decodeFloats(name, into: out)
    }
}
