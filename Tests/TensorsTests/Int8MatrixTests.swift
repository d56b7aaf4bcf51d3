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
