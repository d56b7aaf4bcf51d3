import XCTest
import Tensors

final class Int8MatrixTests: XCTestCase {
    func values(_ n: Int, seed: UInt64) -> [Float] {
        var s = seed &* 0x9E3779B97F4A7C15 | 1
        return (0..<n).map { _ in
            s ^= s << 13; s ^= s >> 7; s ^= s << 17
            return Float(s % 2_000_001) / 1_000_000 - 1
        }
    }

    /// Each dequantised weight is within half a step (max|block| / 254) of the original, with the block
    /// of 32 columns it belongs to; zero rows stay zero; one large weight only coarsens its own block.
    func testQuantisationErrorIsHalfABlockStep() {
        let rows = 7, cols = 77
        var w = values(rows * cols, seed: 3)
        for j in 0..<cols { w[2 * cols + j] = 0 }
        w[4 * cols + 3] = 50   // an outlier in block 0 of row 4
        let m = w.withUnsafeBufferPointer { Int8Matrix($0.baseAddress!, rows: rows, cols: cols) }
        XCTAssertEqual(m.stride, 96)
        for r in 0..<rows {
            for c in 0..<cols {
                let lo = c / 32 * 32, hi = min(cols, lo + 32)
                let amax = (lo..<hi).map { abs(w[r * cols + $0]) }.max()!
                XCTAssertLessThanOrEqual(abs(m.value(row: r, col: c) - w[r * cols + c]), amax / 254 * 1.0001 + 1e-12, "\(r),\(c)")
            }
        }
        XCTAssertEqual(m.value(row: 2, col: 5), 0)
        // Outside the outlier's block the step is that of ordinary weights (≤ 1/254), not 50/254.
        for c in 32..<cols { XCTAssertLessThanOrEqual(abs(m.value(row: 4, col: c) - w[4 * cols + c]), 1.0001 / 254) }
    }

    /// Stacked matrices give each part's product in its own buffer, equal to the parts applied alone.
    func testStackedPartsEqualSeparateProducts() {
        let cols = 70
        let parts = [(9, 1), (4, 2), (130, 3)].map { rows, seed -> Tensor in
            let t = Tensor(shape: [rows, cols])
            for (i, v) in values(rows * cols, seed: UInt64(seed)).enumerated() { t[i] = v }
            return t
        }
        let stacked = Int8Matrix(stacking: parts)
        XCTAssertEqual(stacked.rows, 143)
        for count in 1...Int8Matrix.maxBatch {
            let x = Tensor(shape: [count, cols])
            for (i, v) in values(count * cols, seed: UInt64(40 + count)).enumerated() { x[i] = v }
            let outs = parts.map { Tensor(shape: [count, $0.shape[0]]) }
            stacked.apply(x.pointer, count: count, into: outs[0].pointer, outs[1].pointer, outs[2].pointer)
            for (p, t) in parts.enumerated() {
                let alone = Tensor(shape: [count, t.shape[0]])
                Int8Matrix(t).apply(x.pointer, count: count, into: alone.pointer)
                XCTAssertEqual(outs[p].array, alone.array, "part \(p) batch \(count)")
            }
        }
    }

    /// apply equals the product with the dequantised weights, for 1…maxBatch input rows, odd widths
    /// (scalar tail) and accumulate.
    func testApplyEqualsDequantisedProduct() {
        for (rows, cols) in [(5, 16), (33, 37), (300, 576), (64, 1), (7, 100)] {
            let w = values(rows * cols, seed: UInt64(rows * 31 + cols))
            let m = w.withUnsafeBufferPointer { Int8Matrix($0.baseAddress!, rows: rows, cols: cols) }
            for count in 1...Int8Matrix.maxBatch {
                let x = values(count * cols, seed: UInt64(count + 99))
                var out = [Float](repeating: 0.5, count: count * rows)
                for accumulate in [false, true] {
                    out = [Float](repeating: 0.5, count: count * rows)
                    x.withUnsafeBufferPointer { xp in
                        out.withUnsafeMutableBufferPointer { op in
                            m.apply(xp.baseAddress!, count: count, into: op.baseAddress!, accumulate: accumulate)
                        }
                    }
                    for b in 0..<count {
                        for r in 0..<rows {
                            var ref: Double = accumulate ? 0.5 : 0
                            for c in 0..<cols { ref += Double(m.value(row: r, col: c)) * Double(x[b * cols + c]) }
                            XCTAssertEqual(Double(out[b * rows + r]), ref, accuracy: 1e-4 * max(1, abs(ref)),
                                           "\(rows)x\(cols) batch \(count) row \(b),\(r)")
                        }
                    }
                }
            }
        }
    }
}

final class Grid4MatrixTests: XCTestCase {
    /// Blocks on a 16-level grid (as a Q4_1 GGUF dequantises: d·q + m) are held exactly; the product
    /// equals the one with the original weights; anything off-grid is refused.
    func testQ4GridIsLosslessAndOffGridIsRefused() {
        let rows = 70, cols = 96
        var s: UInt64 = 12345
        func next() -> UInt64 { s ^= s << 13; s ^= s >> 7; s ^= s << 17; return s }
        let t = Tensor(shape: [rows, cols])
        for r in 0..<rows {
            for b in 0..<(cols / 32) {
                let d = Float(next() % 1000 + 1) * 1e-5, m = -Float(next() % 1000) * 1e-4
                for j in 0..<32 { t[r * cols + b * 32 + j] = d * Float(next() % 16) + m }
            }
        }
        for j in 0..<32 { t[5 * cols + j] = 0.25 }   // a constant block
        guard let g = Grid4Matrix.exact(t) else { return XCTFail("a Q4 grid must be recognised") }
        XCTAssertEqual(g.byteCount, rows * 3 * 24)
        for r in 0..<rows {
            for c in 0..<cols {
                let w = t[r * cols + c]
                XCTAssertEqual(g.value(row: r, col: c), w, accuracy: 4e-6 * max(0.1, abs(w)), "\(r),\(c)")
            }
        }
        for count in 1...Int8Matrix.maxBatch {
            let x = Tensor(shape: [count, cols])
            for i in 0..<x.count { x[i] = Float(Int(next() % 2001) - 1000) / 1000 }
            for accumulate in [false, true] {
                let out = Tensor(shape: [count, rows])
                for i in 0..<out.count { out[i] = 0.5 }
                g.apply(x.pointer, count: count, into: out.pointer, accumulate: accumulate)
                for b in 0..<count {
                    for r in 0..<rows {
                        var ref: Double = accumulate ? 0.5 : 0
                        for c in 0..<cols { ref += Double(t[r * cols + c]) * Double(x[b * cols + c]) }
                        XCTAssertEqual(Double(out[b * rows + r]), ref, accuracy: 1e-5 * max(1, abs(ref)), "batch \(count) \(b),\(r)")
                    }
                }
            }
        }
        // Stacked: each part's product in its own buffer, equal to the parts alone.
        let top = Tensor(shape: [30, cols]), bottom = Tensor(shape: [40, cols])
        for i in 0..<top.count { top[i] = t[i] }
        for i in 0..<bottom.count { bottom[i] = t[top.count + i] }
        let stacked = Grid4Matrix.exact(stacking: [top, bottom])!
        let x = Tensor(shape: [1, cols])
        for i in 0..<cols { x[i] = Float(i % 5) - 2 }
        let a = Tensor(shape: [30]), b = Tensor(shape: [40]), whole = Tensor(shape: [rows])
        stacked.apply(x.pointer, count: 1, into: a.pointer, b.pointer, nil)
        g.apply(x.pointer, count: 1, into: whole.pointer, accumulate: false)
        XCTAssertEqual(a.array + b.array, whole.array)
        // Off-grid anywhere (here one weight of the last block) → nil; so are widths that are not whole blocks.
        t[rows * cols - 1] += 1.234567e-4
        XCTAssertNil(Grid4Matrix.exact(t))
        XCTAssertNil(Grid4Matrix.exact(Tensor(shape: [2, 40])))
        let random = Tensor(shape: [4, 64])
        for i in 0..<random.count { random[i] = Float(Int(next() % 20001) - 10000) / 10000 }
        XCTAssertNil(Grid4Matrix.exact(random))
        // Untrusted weights: overflowing ranges, infinities and NaNs are refused, not a crash.
        for bad: Float in [.nan, .infinity, -.greatestFiniteMagnitude] {
            let t = Tensor(shape: [1, 32])
            t[0] = .greatestFiniteMagnitude
            t[7] = bad
            XCTAssertNil(Grid4Matrix.exact(t), "\(bad)")
            let m = Int8Matrix(t)   // the fallback copes too
            let x = Tensor(shape: [1, 32]), out = Tensor(shape: [1, 1])
            m.apply(x.pointer, count: 1, into: out.pointer)
        }
    }
}
