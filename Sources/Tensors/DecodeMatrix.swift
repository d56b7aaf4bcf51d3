/// A compact copy of a row-major [rows × cols] weight (optionally several stacked row-wise) for the
/// matrix–vector products of decode steps with at most `Int8Matrix.maxBatch` input rows.
public protocol DecodeMatrix: AnyObject, Sendable {
    var rows: Int { get }
    var cols: Int { get }
    /// Bytes held.
    var byteCount: Int { get }
    /// out[b × rows] (+)= x[b × cols] · Wᵀ for `count` ≤ `Int8Matrix.maxBatch` input rows.
    func apply(_ x: UnsafePointer<Float>, count: Int, into out: UnsafeMutablePointer<Float>, accumulate: Bool)
    /// For a matrix stacked from 2 or 3 parts: part p's product goes to out_p as [count × rows of part p].
    func apply(_ x: UnsafePointer<Float>, count: Int, into out0: UnsafeMutablePointer<Float>,
               _ out1: UnsafeMutablePointer<Float>, _ out2: UnsafeMutablePointer<Float>?)
}

/// A lossless 4-bit copy of a weight whose every block of 32 consecutive row entries takes at most 16
/// equally spaced values, w = lo + step · q with q ∈ 0…15 — what a GGUF Q4_0/Q4_1 model dequantised to
/// f32 is. `exact(_:)` finds each block's grid and refuses (nil) a matrix with any block off its grid
/// (trained or pruned weights): those take `Int8Matrix`. Half the bytes of int8, and no rounding of
/// the weights at all, so decode logits differ from f32 only by the order of the additions.
public final class Grid4Matrix: DecodeMatrix, @unchecked Sendable {
    public let rows: Int
    public let cols: Int
    let blocksPerRow: Int
    /// 16 bytes per block. Inside a block, 32-bit lane i (bytes 4i…4i+3) holds in its nibble k (bits
    /// 4k…4k+3) the code of column 4k + i, so shift-and-mask of one 128-bit load gives four consecutive
    /// columns per nibble position.
    let codes: UnsafeMutablePointer<UInt8>
    /// (step, lo) per block.
    let grid: UnsafeMutablePointer<Float>
    public let partStarts: [Int]

    private init(rows: Int, cols: Int, partStarts: [Int]) {
        self.rows = rows; self.cols = cols; self.partStarts = partStarts
        blocksPerRow = cols / 32
        codes = .allocate(capacity: max(1, rows * blocksPerRow * 16))
        grid = .allocate(capacity: max(1, rows * blocksPerRow * 2))
    }

    deinit { codes.deallocate(); grid.deallocate() }

    public var byteCount: Int { rows * blocksPerRow * (16 + 8) }

    /// The 4-bit copy of `parts` stacked row-wise (1…3 matrices of equal width, a multiple of 32), or nil
    /// when some block is not on a 16-level grid within f32 rounding.
    public static func exact(stacking parts: [Tensor]) -> Grid4Matrix? {
        guard !parts.isEmpty, parts.count <= 3, parts.allSatisfy({ $0.shape.count == 2 }) else { return nil }
        let cols = parts[0].shape[1]
        guard cols > 0, cols % 32 == 0, parts.allSatisfy({ $0.shape[1] == cols }) else { return nil }
        var starts = [0]
        for p in parts { starts.append(starts.last! + p.shape[0]) }
        let m = Grid4Matrix(rows: starts.last!, cols: cols, partStarts: starts)
        for (i, p) in parts.enumerated() where !m.fill(p.pointer, rows: p.shape[0], firstRow: starts[i]) { return nil }
        return m
    }

    public static func exact(_ t: Tensor) -> Grid4Matrix? { exact(stacking: [t]) }

    /// Finds every block's grid; false as soon as one block has none (workers stop early too).
    private func fill(_ w: UnsafePointer<Float>, rows n: Int, firstRow: Int) -> Bool {
        let cols = self.cols, bpr = blocksPerRow, codes = self.codes, grid = self.grid
        let failed = UnsafeMutablePointer<Bool>.allocate(capacity: 1)
        failed.initialize(to: false)
        defer { failed.deallocate() }
        Parallel.forRanges(n * bpr, minChunk: 256) { range in
            var q = [UInt8](repeating: 0, count: 32)
            for blk in range {
                if failed.pointee { return }
                let r = blk / bpr, b = blk % bpr
                let src = w + r * cols + b * 32
                guard let (step, lo) = Self.findGrid(src, codes: &q) else { failed.pointee = true; return }
                let g = (firstRow + r) * bpr + b
                grid[2 * g] = step; grid[2 * g + 1] = lo
                let dst = codes + g * 16
                for i in 0..<16 { dst[i] = 0 }
                for j in 0..<32 {
                    let lane = j & 3, k = j >> 2
                    dst[4 * lane + k / 2] |= q[j] << (4 * (k & 1))
                }
            }
        }
        return !failed.pointee
    }

    /// (step, lo) and the codes of one block of 32 if lo + step · q reproduces every weight to within
    /// 2⁻²⁰ of the block's magnitude (f32 rounding of the dequantisation that produced it).
    static func findGrid(_ w: UnsafePointer<Float>, codes q: inout [UInt8]) -> (Float, Float)? {
        var lo = w[0], hi = w[0]
        for j in 1..<32 { lo = min(lo, w[j]); hi = max(hi, w[j]) }
        guard lo.isFinite, hi.isFinite else { return nil }
        if hi == lo { for j in 0..<32 { q[j] = 0 }; return (0, lo) }
        let tol = max(abs(lo), abs(hi)) * 0x1p-20
        // The widest grid first: a block that uses levels 0 and 15 has span 15 steps; one that uses
        // fewer levels may span fewer.
        var span = 15
        search: while span >= 1 {
            let step = (hi - lo) / Float(span)
            // Weights are untrusted: hi − lo can overflow, and NaNs slip through min/max.
            guard step.isFinite, step > 0 else { return nil }
            for j in 0..<32 {
                let t = ((w[j] - lo) / step).rounded()
                guard t >= 0, t <= 15 else { return nil }
                if abs(lo + step * t - w[j]) > tol { span -= 1; continue search }
                q[j] = UInt8(t)
            }
            return (step, lo)
        }
        return nil
    }

    /// The weight as the kernel sees it (lo + step · q), for tests.
    public func value(row: Int, col: Int) -> Float {
        let g = row * blocksPerRow + col / 32, j = col % 32
        let byte = codes[g * 16 + 4 * (j & 3) + (j >> 2) / 2]
        let q = (byte >> (4 * UInt8((j >> 2) & 1))) & 15
        return grid[2 * g + 1] + grid[2 * g] * Float(q)
    }

    public func apply(_ x: UnsafePointer<Float>, count: Int, into out: UnsafeMutablePointer<Float>, accumulate: Bool = false) {
        run(x, count: count, outs: (out, nil, nil), accumulate: accumulate)
    }

    public func apply(_ x: UnsafePointer<Float>, count: Int, into out0: UnsafeMutablePointer<Float>,
                      _ out1: UnsafeMutablePointer<Float>, _ out2: UnsafeMutablePointer<Float>?) {
        precondition(partStarts.count - 1 == (out2 == nil ? 2 : 3), "one output per stacked part")
        run(x, count: count, outs: (out0, out1, out2), accumulate: false)
    }

    private func run(_ x: UnsafePointer<Float>, count: Int, outs: Int8Matrix.Outs, accumulate: Bool) {
        precondition(count >= 0 && count <= Int8Matrix.maxBatch, "Grid4Matrix.apply takes at most \(Int8Matrix.maxBatch) rows")
        if count == 0 || rows == 0 { return }
        let bpr = blocksPerRow, cols = self.cols
        // Σ lo·x over a block is lo · Σx: the block sums of x, once per call.
        withUnsafeTemporaryAllocation(of: Float.self, capacity: count * bpr) { sums in
            let xs = sums.baseAddress!
            for b in 0..<count {
                for k in 0..<bpr {
                    let p = x + b * cols + k * 32
                    var a = V4()
                    for i in 0..<8 { a += Self.ld(p + 4 * i) }
                    xs[b * bpr + k] = a.sum()
                }
            }
            let codes = self.codes, grid = self.grid
            Int8Matrix.forParts(rows: rows, partStarts: partStarts, count: count, outs: outs) { range, out, partRows in
                for r in range {
                    let raw = UnsafeRawPointer(codes + r * bpr * 16), g = UnsafePointer(grid + 2 * r * bpr)
                    for b in 0..<count {
                        let v = Self.dot(raw, g, x + b * cols, UnsafePointer(xs + b * bpr), blocks: bpr)
                        if accumulate { out[b * partRows + r] += v } else { out[b * partRows + r] = v }
                    }
                }
            }
        }
    }

    typealias V4 = SIMD4<Float>
    typealias I4 = SIMD4<Int32>
    @inline(__always) static func ld(_ p: UnsafePointer<Float>) -> V4 { UnsafeRawPointer(p).loadUnaligned(as: V4.self) }

    /// One row: Σ_blocks step · (q·x) + lo · Σx. Out of line with two independent chains, like Int8Matrix.dot.
    @inline(never)
    static func dot(_ raw: UnsafeRawPointer, _ g: UnsafePointer<Float>, _ x: UnsafePointer<Float>,
                    _ xsum: UnsafePointer<Float>, blocks: Int) -> Float {
        let mask = I4(repeating: 15)
        var acc0 = V4(), acc1 = V4()
        var lows: Float = 0
        for b in 0..<blocks {
            let v = raw.loadUnaligned(fromByteOffset: b * 16, as: I4.self)
            let xb = x + b * 32
            var p0 = V4(), p1 = V4()
            p0 += V4(v & mask) * ld(xb) + V4((v &>> 8) & mask) * ld(xb + 8)
            p1 += V4((v &>> 4) & mask) * ld(xb + 4) + V4((v &>> 12) & mask) * ld(xb + 12)
            p0 += V4((v &>> 16) & mask) * ld(xb + 16) + V4((v &>> 24) & mask) * ld(xb + 24)
            p1 += V4((v &>> 20) & mask) * ld(xb + 20) + V4((v &>> 28) & mask) * ld(xb + 28)
            let step = g[2 * b]
            acc0 += p0 * step
            acc1 += p1 * step
            lows += g[2 * b + 1] * xsum[b]
        }
        return (acc0 + acc1).sum() + lows
    }
}
