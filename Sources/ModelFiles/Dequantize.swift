import Dispatch

/// Conversion of raw ggml tensor bytes to Float32.
///
/// Results match the `gguf` Python package's `gguf.quants.dequantize` bit for bit: each kernel
/// performs the same float32 operations in the same order (e.g. Q4_1 is `d*q + m` with two
/// roundings, Q4_K is `(d*sc)*q - dmin*m`), and Swift does not fuse them into FMAs.
/// Work is split over contiguous block ranges with `DispatchQueue.concurrentPerform`.
public enum Dequantize {
    /// Decodes `count` elements of `type` from `bytes` into the first `count` slots of `out`.
    /// Throws `.invalidArgument` if `count` is not a whole number of blocks, `bytes` is too short
    /// or `out` too small, and `.unsupported` for types without a decoder.
    public static func decode(type: GGMLType, bytes: UnsafeRawBufferPointer, count: Int,
                              into out: UnsafeMutableBufferPointer<Float>, label: String = "<buffer>") throws {
        guard type.canDecode else {
            throw ModelFileError(.unsupported, path: label, "cannot decode tensor type \(type.name)")
        }
        guard let need = type.byteCount(elements: count) else {
            throw ModelFileError(.invalidArgument, path: label,
                                 "\(count) elements is not a whole number of \(type.name) blocks of \(type.blockSize)")
        }
        guard bytes.count >= need else {
            throw ModelFileError(.invalidArgument, path: label, "\(type.name) data needs \(need) bytes, got \(bytes.count)")
        }
        guard out.count >= count else {
            throw ModelFileError(.invalidArgument, path: label, "output holds \(out.count) floats, need \(count)")
        }
        if count == 0 { return }
        guard let src = bytes.baseAddress, let dst = out.baseAddress else { return }
        let nBlocks = count / type.blockSize
        // Element-wise types are cheap per block, so give them bigger chunks.
        let minBlocks = type.blockSize == 1 ? 1 << 16 : max(1, 8192 / type.blockSize)
        parallelRanges(nBlocks, minChunk: minBlocks) { r in
            kernel(type, src, dst, r)
        }
    }

    /// Convenience: decodes into a fresh array.
    public static func decode(type: GGMLType, bytes: UnsafeRawBufferPointer, count: Int, label: String = "<buffer>") throws -> [Float] {
        var out = [Float](repeating: 0, count: count)
        try out.withUnsafeMutableBufferPointer { try decode(type: type, bytes: bytes, count: count, into: $0, label: label) }
        return out
    }

    /// Exact IEEE half -> float, via a table (x86 without F16C has no cheap conversion).
    public static func halfToFloat(_ h: UInt16) -> Float { halfTable[Int(h)] }

    static let halfTable: [Float] = (0..<65536).map { halfToFloatSlow(UInt16($0)) }

    static func halfToFloatSlow(_ h: UInt16) -> Float {
        let sign = UInt32(h & 0x8000) << 16
        let exp = Int((h >> 10) & 0x1F)
        let mant = UInt32(h & 0x3FF)
        if exp == 0x1F { return Float(bitPattern: sign | 0x7F80_0000 | (mant << 13)) }
        if exp == 0 {
            // Subnormal halves are exact multiples of 2^-24, representable as normal floats.
            let v = Float(mant) * Float(bitPattern: 0x3380_0000) // 2^-24
            return sign != 0 ? -v : v
        }
        return Float(bitPattern: sign | UInt32(exp - 15 + 127) << 23 | (mant << 13))
    }

    static func parallelRanges(_ count: Int, minChunk: Int, _ body: (Range<Int>) -> Void) {
        let workers = dequantWorkers
        let chunks = min(workers, max(1, count / max(1, minChunk)))
        if chunks <= 1 { body(0..<count); return }
        let per = (count + chunks - 1) / chunks
        withoutActuallyEscaping(body) { body in
            DispatchQueue.concurrentPerform(iterations: chunks) { c in
                let lo = c * per, hi = min(count, lo + per)
                if lo < hi { body(lo..<hi) }
            }
        }
    }

    // Decodes blocks `r` of `type`; source block b starts at src + b*typeSize, output at dst + b*blockSize.
    static func kernel(_ type: GGMLType, _ src: UnsafeRawPointer, _ dst: UnsafeMutablePointer<Float>, _ r: Range<Int>) {
        let ts = type.typeSize, bs = type.blockSize
        halfTable.withUnsafeBufferPointer { ht in
            @inline(__always) func h(_ p: UnsafeRawPointer, _ off: Int) -> Float {
                ht[Int(UInt16(littleEndian: p.loadUnaligned(fromByteOffset: off, as: UInt16.self)))]
            }
            let u8 = src.assumingMemoryBound(to: UInt8.self)
            switch type {
            case .f32:
                for i in r { dst[i] = Float(bitPattern: UInt32(littleEndian: src.loadUnaligned(fromByteOffset: i * 4, as: UInt32.self))) }
            case .f16:
                for i in r { dst[i] = h(src, i * 2) }
            case .bf16:
                for i in r { dst[i] = Float(bitPattern: UInt32(UInt16(littleEndian: src.loadUnaligned(fromByteOffset: i * 2, as: UInt16.self))) << 16) }
            case .q8_0:
                for b in r {
                    let p = src + b * ts, o = dst + b * bs
                    let d = h(p, 0)
                    let q = (p + 2).assumingMemoryBound(to: Int8.self)
                    for j in 0..<32 { o[j] = Float(q[j]) * d }
                }
            case .q4_0:
                for b in r {
                    let p = u8 + b * ts, o = dst + b * bs
                    let d = h(src + b * ts, 0)
                    for j in 0..<16 {
                        let x = p[2 + j]
                        o[j] = d * Float(Int(x & 0x0F) - 8)
                        o[j + 16] = d * Float(Int(x >> 4) - 8)
                    }
                }
            case .q4_1:
                for b in r {
                    let p = u8 + b * ts, o = dst + b * bs
                    let d = h(src + b * ts, 0), m = h(src + b * ts, 2)
                    for j in 0..<16 {
                        let x = p[4 + j]
                        o[j] = d * Float(x & 0x0F) + m
                        o[j + 16] = d * Float(x >> 4) + m
                    }
                }
            case .q5_0:
                for b in r {
                    let p = u8 + b * ts, o = dst + b * bs
                    let d = h(src + b * ts, 0)
                    let qh = UInt32(littleEndian: (src + b * ts).loadUnaligned(fromByteOffset: 2, as: UInt32.self))
                    for j in 0..<16 {
                        let x = p[6 + j]
                        let lo = Int(x & 0x0F) | Int((qh >> UInt32(j)) & 1) << 4
                        let hi = Int(x >> 4) | Int((qh >> UInt32(j + 16)) & 1) << 4
                        o[j] = d * Float(lo - 16)
                        o[j + 16] = d * Float(hi - 16)
                    }
                }
            case .q5_1:
                for b in r {
                    let p = u8 + b * ts, o = dst + b * bs
                    let d = h(src + b * ts, 0), m = h(src + b * ts, 2)
                    let qh = UInt32(littleEndian: (src + b * ts).loadUnaligned(fromByteOffset: 4, as: UInt32.self))
                    for j in 0..<16 {
                        let x = p[8 + j]
                        let lo = UInt32(x & 0x0F) | ((qh >> UInt32(j)) & 1) << 4
                        let hi = UInt32(x >> 4) | ((qh >> UInt32(j + 16)) & 1) << 4
                        o[j] = d * Float(lo) + m
                        o[j + 16] = d * Float(hi) + m
                    }
                }
            case .q2_K:
                // scales[16] | qs[64] | d | dmin
                for b in r {
                    let p = u8 + b * ts, o = dst + b * bs
                    let d = h(src + b * ts, 80), dmin = h(src + b * ts, 82)
                    for half in 0..<2 {
                        for s in 0..<4 {
                            for l in 0..<32 {
                                let idx = half * 128 + s * 32 + l
                                let sc = p[idx >> 4]
                                let dl = d * Float(sc & 0x0F), ml = dmin * Float(sc >> 4)
                                let q = (p[16 + half * 32 + l] >> UInt8(2 * s)) & 3
                                o[idx] = dl * Float(q) - ml
                            }
                        }
                    }
                }
            case .q3_K:
                // hmask[32] | qs[64] | scales[12] | d
                for b in r {
                    let p = u8 + b * ts, o = dst + b * bs
                    let d = h(src + b * ts, 108)
                    var dl = (Float(0), Float(0), Float(0), Float(0), Float(0), Float(0), Float(0), Float(0),
                              Float(0), Float(0), Float(0), Float(0), Float(0), Float(0), Float(0), Float(0))
                    withUnsafeMutableBytes(of: &dl) { raw in
                        let dls = raw.baseAddress!.assumingMemoryBound(to: Float.self)
                        let sc = p + 96
                        for i in 0..<16 {
                            let lo = i < 8 ? sc[i] & 0x0F : sc[i - 8] >> 4
                            let hi = (sc[8 + (i & 3)] >> UInt8(2 * (i >> 2))) & 3
                            let s = Int(lo | (hi << 4)) - 32
                            dls[i] = d * Float(s)
                        }
                        for half in 0..<2 {
                            for s in 0..<4 {
                                for l in 0..<32 {
                                    let idx = half * 128 + s * 32 + l
                                    let ql = Int((p[32 + half * 32 + l] >> UInt8(2 * s)) & 3)
                                    let bit = Int((p[l] >> UInt8(idx >> 5)) & 1)
                                    let q = ql - ((bit ^ 1) << 2)
                                    o[idx] = dls[idx >> 4] * Float(q)
                                }
                            }
                        }
                    }
                }
            case .q4_K, .q5_K:
                // d | dmin | scales[12] | (qh[32] for Q5_K) | qs[128]
                let isQ5 = type == .q5_K
                let qsOff = isQ5 ? 48 : 16
                for b in r {
                    let p = u8 + b * ts, o = dst + b * bs
                    let d = h(src + b * ts, 0), dmin = h(src + b * ts, 2)
                    let s = p + 4
                    for g in 0..<8 {
                        let sc: UInt8, mn: UInt8
                        if g < 4 {
                            sc = s[g] & 0x3F; mn = s[4 + g] & 0x3F
                        } else {
                            sc = (s[8 + g - 4] & 0x0F) | ((s[g - 4] >> 2) & 0x30)
                            mn = (s[8 + g - 4] >> 4) | ((s[4 + g - 4] >> 2) & 0x30)
                        }
                        let dd = d * Float(sc), dm = dmin * Float(mn)
                        let c = g >> 1, shift = UInt8((g & 1) * 4)
                        for l in 0..<32 {
                            var q = (p[qsOff + c * 32 + l] >> shift) & 0x0F
                            if isQ5 { q |= ((p[16 + l] >> UInt8(g)) & 1) << 4 }
                            o[g * 32 + l] = dd * Float(q) - dm
                        }
                    }
                }
            case .q6_K:
                // ql[128] | qh[64] | scales[16] (int8) | d
                for b in r {
                    let p = u8 + b * ts, o = dst + b * bs
                    let d = h(src + b * ts, 208)
                    let scales = (src + b * ts + 192).assumingMemoryBound(to: Int8.self)
                    for half in 0..<2 {
                        for k in 0..<2 {
                            for m in 0..<64 {
                                let idx = half * 128 + k * 64 + m
                                let ql = (p[half * 64 + m] >> UInt8(4 * k)) & 0x0F
                                let l = idx & 31, s = (idx >> 5) & 3
                                let qh = (p[128 + half * 32 + l] >> UInt8(2 * s)) & 3
                                let q = Int(ql | (qh << 4)) - 32
                                o[idx] = (d * Float(scales[idx >> 4])) * Float(q)
                            }
                        }
                    }
                }
            default:
                break
            }
        }
    }
}

#if canImport(Glibc)
import Glibc
#endif
/// ModelFiles may not depend on Tensors, so it sizes its own worker count like Tensors.Parallel.
let dequantWorkers: Int = max(1, Int(sysconf(Int32(_SC_NPROCESSORS_ONLN))))
