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

    /// Each dequantised weight is within half a step (max|row| / 254) of the original; zero rows stay zero.
    func testQuantisationErrorIsHalfAStep() {
        let rows = 7, cols = 37
        var w = values(rows * cols, seed: 3)
        for j in 0..<cols { w[2 * cols + j] = 0 }
        let m = w.withUnsafeBufferPointer { Int8Matrix($0.baseAddress!, rows: rows, cols: cols) }
        XCTAssertEqual(m.stride, 48)
        for r in 0..<rows {
            let amax = (0..<cols).map { abs(w[r * cols + $0]) }.max()!
            for c in 0..<cols {
                XCTAssertLessThanOrEqual(abs(m.value(row: r, col: c) - w[r * cols + c]), amax / 254 * 1.0001 + 1e-12)
            }
        }
        XCTAssertEqual(m.value(row: 2, col: 5), 0)
    }

    /// apply equals the product with the dequantised weights, for 1…maxBatch input rows, odd widths
    /// (scalar tail) and accumulate.
    func testApplyEqualsDequantisedProduct() {
        for (rows, cols) in [(5, 16), (33, 37), (300, 576), (64, 1)] {
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
