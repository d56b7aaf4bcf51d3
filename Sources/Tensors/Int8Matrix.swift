/// A compact copy of a row-major [rows × cols] f32 weight for matrix–vector products: every row is
/// stored as 8-bit integers with its own scale (w ≈ scale[r] · q, q ∈ −127…127, scale = max|w| / 127).
///
/// Decoding one token reads every weight once, so its speed is bounded by memory bandwidth, and a
/// quarter of the bytes is nearly four times the tokens per second. Prefill and training keep f32
/// and sgemm, where the weights are reused across many rows and the arithmetic dominates.
public final class Int8Matrix: @unchecked Sendable {
    public let rows: Int
    public let cols: Int
    /// Row stride in bytes: `cols` rounded up to 16 so every row is whole SIMD loads; padding is zero.
    public let stride: Int
    /// q + 128 as unsigned bytes, which the kernel turns back into floats with integer lane operations only.
    let codes: UnsafeMutablePointer<UInt8>
    let scales: UnsafeMutablePointer<Float>

    public init(_ w: UnsafePointer<Float>, rows: Int, cols: Int) {
        precondition(rows >= 0 && cols >= 0, "negative shape")
        self.rows = rows; self.cols = cols
        stride = (cols + 15) / 16 * 16
        codes = .allocate(capacity: max(1, rows * stride))
        scales = .allocate(capacity: max(1, rows))
        let codes = self.codes, scales = self.scales, stride = self.stride
        Parallel.forRanges(rows, minChunk: 64) { range in
            for r in range {
                let src = w + r * cols, dst = codes + r * stride
                var m: Float = 0
                for j in 0..<cols { m = max(m, abs(src[j])) }
                let s = m > 0 ? m / 127 : 1
                scales[r] = m > 0 ? s : 0
                let inv = 1 / s
                for j in 0..<cols {
                    let q = max(-127, min(127, (src[j] * inv).rounded()))
                    dst[j] = UInt8(Int(q) + 128)
                }
                for j in cols..<stride { dst[j] = 128 }
            }
        }
    }

    public convenience init(_ t: Tensor) {
        precondition(t.shape.count == 2, "Int8Matrix needs a matrix, got shape \(t.shape)")
        self.init(t.pointer, rows: t.shape[0], cols: t.shape[1])
    }

    deinit { codes.deallocate(); scales.deallocate() }

    /// Bytes held (codes + scales).
    public var byteCount: Int { rows * stride + rows * 4 }

    /// The dequantised weight (scale · q), for tests.
    public func value(row: Int, col: Int) -> Float { scales[row] * Float(Int(codes[row * stride + col]) - 128) }

    /// The most input rows `apply` handles in one pass over the weights.
    public static let maxBatch = 4

    /// out[b × rows] (+)= x[b × cols] · Wᵀ for `count` ≤ `maxBatch` input rows; output rows are split
    /// across `Parallel` workers, and each weight row is read once for all input rows.
    public func apply(_ x: UnsafePointer<Float>, count: Int, into out: UnsafeMutablePointer<Float>,
                      accumulate: Bool = false) {
        precondition(count >= 0 && count <= Self.maxBatch, "Int8Matrix.apply takes at most \(Self.maxBatch) rows")
        if count == 0 || rows == 0 { return }
        let rows = self.rows, cols = self.cols, stride = self.stride
        let codes = self.codes, scales = self.scales
        // A zero-padded tail of x would let the SIMD loop run to `stride`; instead the last partial
        // block is handled in scalar code so x needs no copy.
        let full = cols / 16 * 16
        Parallel.forRanges(rows, minChunk: 32) { range in
            for r in range {
                let row = codes + r * stride
                var a0 = Kernels.V16(), a1 = Kernels.V16(), a2 = Kernels.V16(), a3 = Kernels.V16()
                var j = 0
                while j < full {
                    let w = Self.decode(row + j)
                    a0 += w * Kernels.load(x + j)
                    if count > 1 { a1 += w * Kernels.load(x + cols + j) }
                    if count > 2 { a2 += w * Kernels.load(x + 2 * cols + j) }
                    if count > 3 { a3 += w * Kernels.load(x + 3 * cols + j) }
                    j += 16
                }
                var t0 = a0.sum(), t1 = a1.sum(), t2 = a2.sum(), t3 = a3.sum()
                while j < cols {
                    let w = Float(Int(row[j]) - 128)
                    t0 += w * x[j]
                    if count > 1 { t1 += w * x[cols + j] }
                    if count > 2 { t2 += w * x[2 * cols + j] }
                    if count > 3 { t3 += w * x[3 * cols + j] }
                    j += 1
                }
                let s = scales[r]
                let sums = (t0, t1, t2, t3)
                for b in 0..<count {
                    let v = s * (b == 0 ? sums.0 : b == 1 ? sums.1 : b == 2 ? sums.2 : sums.3)
                    if accumulate { out[b * rows + r] += v } else { out[b * rows + r] = v }
                }
            }
        }
    }

    /// 16 codes → 16 floats q = code − 128 without an int→float conversion instruction: OR-ing the byte
    /// into the mantissa of 2²³ gives exactly 2²³ + code, and subtracting 2²³ + 128 leaves q.
    @inline(__always)
    static func decode(_ p: UnsafePointer<UInt8>) -> Kernels.V16 {
        let b = UnsafeRawPointer(p).loadUnaligned(as: SIMD16<UInt8>.self)
        let bits = SIMD16<UInt32>(truncatingIfNeeded: b) | 0x4B00_0000
        return unsafeBitCast(bits, to: Kernels.V16.self) - 8_388_736
    }
}
