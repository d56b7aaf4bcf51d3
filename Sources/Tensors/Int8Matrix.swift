/// A compact copy of a row-major [rows × cols] f32 weight for matrix–vector products: every block of
/// `blockSize` (32) consecutive weights of a row is stored as 8-bit integers with its own f32 scale
/// (w ≈ scale · q, q ∈ −127…127, scale = max|block| / 127), the layout idea of GGUF's Q8_0.
///
/// Decoding one token reads every weight once, so its speed is bounded by memory traffic and by the
/// instructions spent turning codes into floats; int8 is a quarter of the bytes of f32. A scale per 32
/// weights (instead of per row) keeps a few large weights from flattening the rest of their row, which
/// is what made per-row int8 flip greedy tokens. Prefill and training keep f32 and sgemm, where the
/// weights are reused across many rows and the arithmetic dominates.
///
/// Several matrices that multiply the same input (q/k/v, gate/up) can be stacked into one
/// (`init(stacking:)`) so one parallel pass computes all of them: each pass costs a thread hand-off,
/// and a decode step makes a few hundred of them.
public final class Int8Matrix: DecodeMatrix, @unchecked Sendable {
    public static let blockSize = 32
    public let rows: Int
    public let cols: Int
    /// Row stride in bytes: `cols` rounded up to whole blocks; padding codes are zero.
    public let stride: Int
    let blocksPerRow: Int
    /// Signed codes. Inside every 16-byte group the 4×4 byte matrix is transposed (byte 4i + k holds
    /// weight 4k + i of the group), so four shifts of one 128-bit load give the group's weights as four
    /// runs of four consecutive columns — sign extension and int→float conversion need only the
    /// 32-bit lane operations every x86-64 and arm64 CPU has.
    let codes: UnsafeMutablePointer<Int8>
    let scales: UnsafeMutablePointer<Float>
    /// First row of each stacked part, plus `rows` at the end.
    public let partStarts: [Int]

    public convenience init(_ w: UnsafePointer<Float>, rows: Int, cols: Int) {
        self.init(parts: [(w, rows)], cols: cols)
    }

    public convenience init(_ t: Tensor) {
        precondition(t.shape.count == 2, "Int8Matrix needs a matrix, got shape \(t.shape)")
        self.init(t.pointer, rows: t.shape[0], cols: t.shape[1])
    }

    /// The matrices stacked row-wise (all must have the same column count); `apply(_:count:into:)`
    /// with one output per part writes each part's product to its own buffer.
    public convenience init(stacking parts: [Tensor]) {
        precondition(!parts.isEmpty && parts.count <= 3, "Int8Matrix stacks 1…3 matrices")
        let cols = parts[0].shape.count == 2 ? parts[0].shape[1] : -1
        for t in parts { precondition(t.shape.count == 2 && t.shape[1] == cols, "stacked matrices need equal widths") }
        self.init(parts: parts.map { (UnsafePointer($0.pointer), $0.shape[0]) }, cols: cols)
    }

    init(parts: [(UnsafePointer<Float>, Int)], cols: Int) {
        precondition(cols >= 0 && parts.allSatisfy { $0.1 >= 0 }, "negative shape")
        var starts = [0]
        for p in parts { starts.append(starts.last! + p.1) }
        partStarts = starts
        rows = starts.last!
        self.cols = cols
        blocksPerRow = (cols + Self.blockSize - 1) / Self.blockSize
        stride = blocksPerRow * Self.blockSize
        codes = .allocate(capacity: max(1, rows * stride))
        scales = .allocate(capacity: max(1, rows * blocksPerRow))
        for (i, p) in parts.enumerated() { quantize(p.0, rows: p.1, firstRow: starts[i]) }
    }

    private func quantize(_ w: UnsafePointer<Float>, rows n: Int, firstRow: Int) {
        let cols = self.cols, stride = self.stride, bpr = blocksPerRow
        let codes = self.codes, scales = self.scales
        Parallel.forRanges(n, minChunk: 64) { range in
            for r in range {
                let src = w + r * cols, dst = codes + (firstRow + r) * stride
                for b in 0..<bpr {
                    let lo = b * Self.blockSize, hi = min(cols, lo + Self.blockSize)
                    var m: Float = 0
                    for j in lo..<hi { m = max(m, abs(src[j])) }
                    let s = m / 127
                    scales[(firstRow + r) * bpr + b] = s
                    let inv: Float = m > 0 ? 1 / s : 0
                    for j in lo..<(lo + Self.blockSize) {
                        let q = j < hi ? max(-127, min(127, (src[j] * inv).rounded())) : 0
                        dst[Self.storageIndex(j)] = Int8(q)
                    }
                }
            }
        }
    }

    /// Byte offset inside a row of the code of column j (the 4×4 transpose within 16-byte groups).
    @inline(__always) static func storageIndex(_ j: Int) -> Int {
        let g = j & ~15, k = (j & 15) >> 2, i = j & 3
        return g + 4 * i + k
    }

    deinit { codes.deallocate(); scales.deallocate() }

    /// True when every element dequantises to exactly its source value (weights that came from a Q8_0 file,
    /// whose blocks already are 32 int8 codes times one scale). Stops at the first mismatch.
    public func reproduces(_ parts: [Tensor]) -> Bool {
        var row = 0
        for p in parts {
            guard p.shape.count == 2, p.shape[1] == cols else { return false }
            let n = p.shape[0], src = p.pointer
            for r in 0..<n {
                let base = src + r * cols
                for c in 0..<cols where value(row: row + r, col: c) != base[c] { return false }
            }
            row += n
        }
        return true
    }

    /// Bytes held (codes + scales).
    public var byteCount: Int { rows * stride + rows * blocksPerRow * 4 }

    /// The dequantised weight (scale · q), for tests.
    public func value(row: Int, col: Int) -> Float {
        scales[row * blocksPerRow + col / Self.blockSize] * Float(codes[row * stride + Self.storageIndex(col)])
    }

    /// The most input rows `apply` handles in one pass over the weights.
    public static let maxBatch = 4

    /// out[b × rows] (+)= x[b × cols] · Wᵀ for `count` ≤ `maxBatch` input rows; output rows are split
    /// across `Parallel` workers, and each weight row is read once for all input rows.
    public func apply(_ x: UnsafePointer<Float>, count: Int, into out: UnsafeMutablePointer<Float>,
                      accumulate: Bool = false) {
        run(x, count: count, outs: (out, nil, nil), accumulate: accumulate)
    }

    /// For a stacked matrix: part p's product goes to out_p as [count × rows of part p].
    public func apply(_ x: UnsafePointer<Float>, count: Int, into out0: UnsafeMutablePointer<Float>,
                      _ out1: UnsafeMutablePointer<Float>, _ out2: UnsafeMutablePointer<Float>?) {
        precondition(partStarts.count - 1 == (out2 == nil ? 2 : 3), "one output per stacked part")
        run(x, count: count, outs: (out0, out1, out2), accumulate: false)
    }

    typealias Outs = (UnsafeMutablePointer<Float>, UnsafeMutablePointer<Float>?, UnsafeMutablePointer<Float>?)

    private func run(_ x: UnsafePointer<Float>, count: Int, outs: Outs, accumulate: Bool) {
        precondition(count >= 0 && count <= Self.maxBatch, "Int8Matrix.apply takes at most \(Self.maxBatch) rows")
        Self.forParts(rows: rows, partStarts: partStarts, count: count, outs: outs) { range, out, partRows in
            if count == 1 {
                rowsOne(range, x, out, accumulate: accumulate)
            } else {
                rowsBatch(range, x, count: count, out, outStride: partRows, accumulate: accumulate)
            }
        }
    }

    /// Splits the rows across `Parallel` workers and each worker's range at part boundaries; `body` gets
    /// a range of global rows, the output of their part shifted so that global row r lands at out[r]
    /// (input row b at out[b · partRows + r]), and the part's row count.
    static func forParts(rows: Int, partStarts starts: [Int], count: Int, outs: Outs,
                         _ body: (Range<Int>, UnsafeMutablePointer<Float>, Int) -> Void) {
        if count == 0 || rows == 0 { return }
        let parts = starts.count - 1
        let s1 = parts > 1 ? starts[1] : rows, s2 = parts > 2 ? starts[2] : rows
        // ~1 µs of work per 64 rows of 576: smaller chunks are not worth a thread.
        Parallel.forRanges(rows, minChunk: 64) { range in
            var r = range.lowerBound
            while r < range.upperBound {
                let (out, first, partRows): (UnsafeMutablePointer<Float>, Int, Int)
                if r < s1 { out = outs.0; first = 0; partRows = s1 }
                else if r < s2 { out = outs.1!; first = s1; partRows = s2 - s1 }
                else { out = outs.2!; first = s2; partRows = rows - s2 }
                let end = min(range.upperBound, first + partRows)
                body(r..<end, out - first, partRows)
                r = end
            }
        }
    }

    public func apply(_ x: UnsafePointer<Float>, count: Int, into out0: UnsafeMutablePointer<Float>,
                      _ out1: UnsafeMutablePointer<Float>) {
        apply(x, count: count, into: out0, out1, nil)
    }

    typealias V4 = SIMD4<Float>
    typealias I4 = SIMD4<Int32>

    @inline(__always) static func ld(_ p: UnsafePointer<Float>) -> V4 { UnsafeRawPointer(p).loadUnaligned(as: V4.self) }

    /// Σ over the row's whole blocks of scale · (w·x), as four lanes. Kept out of line and shaped as two
    /// independent chains per block: inlined into the row loop, LLVM reshuffles the lanes across groups
    /// and spills (measured 2.5× slower).
    @inline(never)
    static func dot(_ raw: UnsafeRawPointer, _ sc: UnsafePointer<Float>, _ x: UnsafePointer<Float>, blocks: Int) -> V4 {
        var acc0 = V4(), acc1 = V4()
        var b = 0
        while b < blocks {
            let j = b * 32
            var p0 = V4(), p1 = V4()
            for h in 0..<2 {
                let v = raw.loadUnaligned(fromByteOffset: j + 16 * h, as: I4.self)
                let xj = x + j + 16 * h
                let w0 = V4((v &<< 24) &>> 24), w1 = V4((v &<< 16) &>> 24)
                let w2 = V4((v &<< 8) &>> 24), w3 = V4(v &>> 24)
                p0 += w0 * ld(xj) + w2 * ld(xj + 8)
                p1 += w1 * ld(xj + 4) + w3 * ld(xj + 12)
            }
            let s = sc[b]
            acc0 += p0 * s
            acc1 += p1 * s
            b += 1
        }
        return acc0 + acc1
    }

    /// The last, partial block of a row in scalar code, so x never needs padding.
    @inline(__always) func tail(_ row: UnsafePointer<Int8>, _ x: UnsafePointer<Float>, from j0: Int) -> Float {
        var t: Float = 0
        for j in j0..<cols { t += Float(row[Self.storageIndex(j)]) * x[j] }
        return t
    }

    private func rowsOne(_ range: Range<Int>, _ x: UnsafePointer<Float>, _ out: UnsafeMutablePointer<Float>,
                         accumulate: Bool) {
        let full = cols / Self.blockSize, bpr = blocksPerRow
        for r in range {
            let row = UnsafePointer(codes + r * stride)
            let sc = UnsafePointer(scales + r * bpr)
            var v = Self.dot(UnsafeRawPointer(row), sc, x, blocks: full).sum()
            if full < bpr { v += sc[full] * tail(row, x, from: full * 32) }
            if accumulate { out[r] += v } else { out[r] = v }
        }
    }

    private func rowsBatch(_ range: Range<Int>, _ x: UnsafePointer<Float>, count: Int,
                           _ out: UnsafeMutablePointer<Float>, outStride: Int, accumulate: Bool) {
        let full = cols / Self.blockSize, bpr = blocksPerRow, cols = self.cols
        for r in range {
            let row = UnsafePointer(codes + r * stride)
            let sc = UnsafePointer(scales + r * bpr)
            // One input row after another: the weight row (≤ a few KiB) is in L1 after the first.
            for b in 0..<count {
                let xb = x + b * cols
                var v = Self.dot(UnsafeRawPointer(row), sc, xb, blocks: full).sum()
                if full < bpr { v += sc[full] * tail(row, xb, from: full * 32) }
                if accumulate { out[b * outStride + r] += v } else { out[b * outStride + r] = v }
            }
        }
    }
}
