import Foundation

/// Encodes f32 values in the GGUF storage types we write, bit-identical to the `gguf` Python package
/// (gguf-py's `quants.quantize`): f16 by IEEE round-to-nearest-even, bf16 by rounding the bit pattern to nearest
/// even, q8_0 as blocks of 32 values with scale d = max|x| / 127 (stored f16) and q = round-half-away(x · (1/d)),
/// computed in f32 like numpy.
public enum GGUFEncoding {
    public static func canEncode(_ type: GGMLType, rowLength: Int) -> Bool {
        switch type {
        case .f32, .f16, .bf16: return true
        case .q8_0: return rowLength % 32 == 0
        default: return false
        }
    }

    /// The stored bytes of `values` (a whole tensor, rows of `rowLength`).
    public static func encode(_ values: UnsafeBufferPointer<Float>, as type: GGMLType) throws -> [UInt8] {
        let n = values.count
        switch type {
        case .f32:
            return Array(UnsafeRawBufferPointer(values))
        case .f16:
            var out = [UInt8](repeating: 0, count: n * 2)
            out.withUnsafeMutableBytes { raw in
                let dst = raw.bindMemory(to: UInt16.self)
                for i in 0..<n { dst[i] = Float16(values[i]).bitPattern.littleEndian }
            }
            return out
        case .bf16:
            var out = [UInt8](repeating: 0, count: n * 2)
            out.withUnsafeMutableBytes { raw in
                let dst = raw.bindMemory(to: UInt16.self)
                for i in 0..<n { dst[i] = SafetensorsWriter.bf16Bits(values[i]).littleEndian }
            }
            return out
        case .q8_0:
            guard n % 32 == 0 else {
                throw ModelFileError(.invalidArgument, path: "q8_0", "\(n) values are not whole blocks of 32")
            }
            let blocks = n / 32
            var out = [UInt8](repeating: 0, count: blocks * 34)
            out.withUnsafeMutableBytes { raw in
                let base = raw.baseAddress!
                for b in 0..<blocks {
                    let x = values.baseAddress! + b * 32
                    var amax: Float = 0
                    for i in 0..<32 { amax = max(amax, abs(x[i])) }
                    let d = amax / 127
                    let inv: Float = d == 0 ? 0 : 1 / d
                    let block = base + b * 34
                    block.storeBytes(of: Float16(d).bitPattern.littleEndian, as: UInt16.self)
                    for i in 0..<32 {
                        // numpy's np_roundf in gguf-py: round half away from zero.
                        let q = (x[i] * inv).rounded(.toNearestOrAwayFromZero)
                        block.storeBytes(of: Int8(q), toByteOffset: 2 + i, as: Int8.self)
                    }
                }
            }
            return out
        default:
            throw ModelFileError(.unsupported, path: type.name, "GGUF export writes F32, F16, BF16 and Q8_0 only")
        }
    }
}

/// Writes a GGUF v3 file of any size: the header and tensor table first, then each tensor's bytes as the caller
/// produces them, one at a time (a 1.5B model in f32 never has to fit in memory twice). Atomic: the file appears
/// complete or not at all.
public struct GGUFStreamWriter {
    public struct TensorPlan: Sendable {
        public var name: String
        /// ne0-first (the row length first), as GGUF stores dimensions.
        public var dims: [Int]
        public var type: GGMLType
        public init(name: String, dims: [Int], type: GGMLType) { self.name = name; self.dims = dims; self.type = type }

        public var byteCount: Int? {
            guard let n = SafetensorsWriter.checkedProduct(dims) else { return nil }
            return type.byteCount(elements: n)
        }
    }

    public var metadata: [(String, GGUFValue)]
    public var tensors: [TensorPlan]
    public var alignment = GGUFFile.defaultAlignment

    public init(metadata: [(String, GGUFValue)], tensors: [TensorPlan]) { self.metadata = metadata; self.tensors = tensors }

    /// Writes `path`; `bytes(i)` returns tensor i's stored bytes, exactly `tensors[i].byteCount` of them.
    public func write(path: String, bytes: (Int) throws -> [UInt8]) throws {
        var header = GGUFWriter(alignment: alignment)
        for (k, v) in metadata { header.add(k, v) }
        var sizes: [Int] = []
        for t in tensors {
            guard let size = t.byteCount, !t.dims.isEmpty, t.dims.allSatisfy({ $0 > 0 }) else {
                throw ModelFileError(.invalidArgument, path: path, "tensor \(t.name): dims \(t.dims) do not fit \(t.type.name)")
            }
            sizes.append(size)
        }
        let head = header.serializeHeader(tensors: zip(tensors, sizes).map { ($0.name, $0.dims, $0.type, $1) })
        let w = try AtomicWriter(path: path)
        try w.write(head)
        var written = 0
        for (i, size) in sizes.enumerated() {
            let data = try bytes(i)
            guard data.count == size else {
                throw ModelFileError(.invalidArgument, path: path, "tensor \(tensors[i].name): \(data.count) bytes produced, \(size) planned")
            }
            try w.write(data)
            written += size
            let pad = (alignment - written % alignment) % alignment
            if pad > 0 && i + 1 < sizes.count { try w.write([UInt8](repeating: 0, count: pad)); written += pad }
        }
        try w.commit()
    }
}
