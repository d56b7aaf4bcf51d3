import XCTest
import Foundation
import Tensors

final class KernelTests: XCTestCase {
    var rng = SystemRandomNumberGenerator()
    // Deterministic pseudo-random values without depending on Transformer's generator.
    func values(_ n: Int, seed: UInt64, scale: Float = 1) -> [Float] {
        var s = seed &* 0x9E3779B97F4A7C15 | 1
        return (0..<n).map { _ in
            s ^= s << 13; s ^= s >> 7; s ^= s << 17
            return (Float(s % 2_000_001) / 1_000_000 - 1) * scale
        }
    }

    func testExpMatchesLibm() {
        var worst: Float = 0
        var x: Float = -87
        while x < 88 {
            let v = Kernels.exp(Kernels.V16((0..<16).map { x + Float($0) * 0.0137 }))
            for i in 0..<16 {
                let ref = Foundation.exp(Double(x + Float(i) * 0.0137))
                worst = max(worst, Float(abs(Double(v[i]) - ref) / ref))
            }
            x += 0.219
        }
        XCTAssertLessThan(worst, 4e-7)
        XCTAssertEqual(Kernels.exp(-Float.infinity), Kernels.exp(Float(-87.33)))
        XCTAssertFalse(Kernels.exp(Float.infinity).isNaN)
    }

    func testRMSNormMatchesDoubleReference() {
        let rows = 5, dim = 37
        let x = values(rows * dim, seed: 1, scale: 3), w = values(dim, seed: 2)
        var out = [Float](repeating: 0, count: rows * dim)
        Kernels.rmsNorm(x, rows: rows, dim: dim, weight: w, eps: 1e-5, into: &out)
        for r in 0..<rows {
            let row = x[(r * dim)..<((r + 1) * dim)].map(Double.init)
            let inv = 1 / (row.reduce(0) { $0 + $1 * $1 } / Double(dim) + 1e-5).squareRoot()
            for i in 0..<dim {
                XCTAssertEqual(out[r * dim + i], Float(Double(w[i]) * row[i] * inv), accuracy: 1e-5)
            }
        }
        // In place is allowed.
        var y = x
        Kernels.rmsNorm(y, rows: rows, dim: dim, weight: w, eps: 1e-5, into: &y)
        XCTAssertEqual(y, out)
    }

    func testSoftmaxStableAndNormalised() {
        var x: [Float] = values(41, seed: 3, scale: 5).map { $0 + 1000 }   // huge offsets need max subtraction
        let ref: [Double] = {
            let m = x.map(Double.init).max()!
            let e = x.map { Foundation.exp(Double($0) - m) }
            let s = e.reduce(0, +)
            return e.map { $0 / s }
        }()
        Kernels.softmax(&x, count: x.count)
        for i in x.indices { XCTAssertEqual(Double(x[i]), ref[i], accuracy: 1e-6) }
        XCTAssertEqual(x.reduce(0, +), 1, accuracy: 1e-5)
        let lse = Kernels.logSumExp([1, 2, 3], count: 3)
        XCTAssertEqual(lse, Foundation.log(Foundation.exp(1.0) + Foundation.exp(2.0) + Foundation.exp(3.0)), accuracy: 1e-6)
    }

    func testGatedActivationsAndArgmax() {
        var g: [Float] = values(50, seed: 4, scale: 20)
        let u = values(50, seed: 5)
        let ref = zip(g, u).map { Double($0) / (1 + Foundation.exp(-Double($0))) * Double($1) }
        g.withUnsafeMutableBufferPointer { gp in
            Kernels.gatedActivation(.silu, gate: gp.baseAddress!, up: u, into: gp.baseAddress!, rows: 5, dim: 10)
        }
        for i in g.indices { XCTAssertEqual(Double(g[i]), ref[i], accuracy: 1e-5 * max(1, abs(ref[i]))) }
        // GELU-tanh against PyTorch's definition ½x(1 + tanh(√(2/π)(x + 0.044715x³))) in double, ablated columns zero.
        var h: [Float] = values(50, seed: 6, scale: 8)
        let gelu = zip(h, u).map { x, up -> Double in
            let x = Double(x)
            return 0.5 * x * (1 + Foundation.tanh((2 / Double.pi).squareRoot() * (x + 0.044715 * x * x * x))) * Double(up)
        }
        h.withUnsafeMutableBufferPointer { hp in
            Kernels.gatedActivation(.geluTanh, gate: hp.baseAddress!, up: u, into: hp.baseAddress!, rows: 5, dim: 10, zeroColumns: [3])
        }
        for i in h.indices {
            XCTAssertEqual(Double(h[i]), i % 10 == 3 ? 0 : gelu[i], accuracy: 1e-5 * max(1, abs(gelu[i])), "\(i)")
        }
        XCTAssertEqual(Kernels.argmax([1, 3, 2, 3], count: 4), 1)
        XCTAssertEqual(Kernels.argmax([-1, -1], count: 2), 0)
    }

    func testSplitSgemmEqualsOneCall() {
        // Wide (column slices) and narrow (row slices) shapes, every transpose, with alpha and beta.
        for (m, n, k) in [(37, 300, 41), (301, 19, 23)] {
            let a = values(m * k, seed: 8), b = values(k * n, seed: 9), c0 = values(m * n, seed: 10)
            for transA in [false, true] {
                for transB in [false, true] {
                    func run(split: Bool) -> [Float] {
                        let (was, minimum) = (BLAS.splitting, BLAS.splitMinimumWork)
                        BLAS.splitting = split; BLAS.splitMinimumWork = 1
                        defer { BLAS.splitting = was; BLAS.splitMinimumWork = minimum }
                        var c = c0
                        BLAS.sgemm(transA: transA, transB: transB, m: m, n: n, k: k, alpha: 1.5,
                                   a: a, lda: transA ? m : k, b: b, ldb: transB ? k : n, beta: 0.5, c: &c, ldc: n)
                        return c
                    }
                    let one = run(split: false), split = run(split: true)
                    for i in one.indices {
                        XCTAssertEqual(split[i], one[i], accuracy: 1e-5 * max(1, abs(one[i])), "\(m)x\(n)x\(k) \(transA) \(transB)")
                    }
                }
            }
        }
    }

    func testSgemmTransposesAgainstNaive() {
        let m = 7, n = 5, k = 9
        let a = values(m * k, seed: 6), b = values(k * n, seed: 7)
        for transA in [false, true] {
            for transB in [false, true] {
                var c = [Float](repeating: 1, count: m * n)
                BLAS.sgemm(transA: transA, transB: transB, m: m, n: n, k: k, alpha: 2,
                           a: a, lda: transA ? m : k, b: b, ldb: transB ? k : n, beta: 0.5, c: &c, ldc: n)
                for i in 0..<m {
                    for j in 0..<n {
                        var s = 0.0
                        for p in 0..<k {
                            let av = transA ? a[p * m + i] : a[i * k + p]
                            let bv = transB ? b[j * k + p] : b[p * n + j]
                            s += Double(av) * Double(bv)
                        }
                        XCTAssertEqual(Double(c[i * n + j]), 2 * s + 0.5, accuracy: 1e-4, "transA \(transA) transB \(transB)")
                    }
                }
            }
        }
        // linear: out = x · Wᵀ
        let w = values(3 * 4, seed: 8), x = values(2 * 4, seed: 9)
        var out = [Float](repeating: 0, count: 6)
        BLAS.linear(x, count: 2, inFeatures: 4, weight: w, outFeatures: 3, into: &out)
        for r in 0..<2 { for o in 0..<3 {
            let s = (0..<4).reduce(Float(0)) { $0 + x[r * 4 + $1] * w[o * 4 + $1] }
            XCTAssertEqual(out[r * 3 + o], s, accuracy: 1e-5)
        } }
    }

    func testRotaryDefaultMatchesFormula() {
        let dim = 8
        let rope = RotaryEmbedding(headDim: dim, theta: 10000)
        for i in 0..<(dim / 2) {
            XCTAssertEqual(rope.invFreq[i], 1 / powf(10000, Float(2 * i) / Float(dim)))
        }
        var x: [Float] = values(2 * dim, seed: 10)
        let orig = x
        let pos = 5
        x.withUnsafeMutableBufferPointer { rope.apply($0.baseAddress!, heads: 2, position: pos) }
        for h in 0..<2 {
            for i in 0..<(dim / 2) {
                let f = Float(pos) * rope.invFreq[i]
                let a = orig[h * dim + i], b = orig[h * dim + i + dim / 2]
                XCTAssertEqual(x[h * dim + i], a * cosf(f) - b * sinf(f), accuracy: 1e-6)
                XCTAssertEqual(x[h * dim + i + dim / 2], b * cosf(f) + a * sinf(f), accuracy: 1e-6)
            }
        }
        // Position 0 is the identity; growing the table keeps earlier rows.
        var y = orig
        y.withUnsafeMutableBufferPointer { rope.apply($0.baseAddress!, heads: 2, position: 0) }
        XCTAssertEqual(y, orig)
        rope.reserve(positions: 5000)
        var z = orig
        z.withUnsafeMutableBufferPointer { rope.apply($0.baseAddress!, heads: 2, position: pos) }
        XCTAssertEqual(z, x)
    }

    func testRotaryLlama3MatchesTransformers() {
        // transformers 5.24 _compute_llama3_parameters(head_dim 16, theta 1e4, factor 8, low 1, high 4, orig 64):
        // covers the unchanged, smoothed and divided bands.
        let expected: [Float] = [1.0, 0.24438458681106567, 0.013042256236076355, 0.0039528473280370235,
                                 0.0012499999720603228, 0.00039528473280370235, 0.0001250000059371814,
                                 3.9528473280370235e-05]
        let rope = RotaryEmbedding(headDim: 16, theta: 10000, llama3: .init(factor: 8, lowFreqFactor: 1, highFreqFactor: 4,
                                                                           originalMaxPositionEmbeddings: 64))
        for i in expected.indices { XCTAssertEqual(rope.invFreq[i], expected[i], accuracy: expected[i] * 2e-7) }
        // cos/sin at position 37 from torch.
        let cos37: [Float] = [0.7654140591621399, -0.9277164340019226, 0.8858082294464111, 0.9893237352371216,
                              0.9989306330680847, 0.999893069267273, 0.9999893307685852, 0.999998927116394]
        let sin37: [Float] = [-0.6435381174087524, 0.37328580021858215, 0.4640514552593231, 0.1457344889640808,
                              0.046233512461185455, 0.014625013805925846, 0.004624983761459589, 0.0014625530457124114]
        var x = [Float](repeating: 0, count: 16)
        x[0...7] = [1, 1, 1, 1, 1, 1, 1, 1][...]
        x.withUnsafeMutableBufferPointer { rope.apply($0.baseAddress!, heads: 1, position: 37) }
        for i in 0..<8 {
            XCTAssertEqual(x[i], cos37[i], accuracy: 1e-6)
            XCTAssertEqual(x[i + 8], sin37[i], accuracy: 1e-6)
        }
    }

    func testCausalAttentionAgainstNaive() {
        // 2 sequences packed (lengths 3 and 2), 4 heads over 2 kv heads, head_dim 20 (exercises tails).
        let heads = 4, kvHeads = 2, d = 20, rows = 5
        let q = values(rows * heads * d, seed: 11), k = values(rows * kvHeads * d, seed: 12), v = values(rows * kvHeads * d, seed: 13)
        let seqStart = [0, 0, 0, 3, 3], pos = [0, 1, 2, 0, 1]
        let count = pos.map { $0 + 1 }
        var out = [Float](repeating: .nan, count: rows * heads * d)
        var scratch = [Float](repeating: 0, count: Attention.scratchCount(maxKeys: 3))
        let scale: Float = 1 / Float(d).squareRoot()
        Attention.causal(q: q, qStride: heads * d, rows: rows, heads: heads, kvHeads: kvHeads, headDim: d, scale: scale,
                         keys: k, values: v, kvStride: kvHeads * d, keyStart: seqStart, keyCount: count, maxKeys: 3,
                         out: &out, outStride: heads * d, scratch: &scratch)
        for r in 0..<rows {
            for h in 0..<heads {
                let kvh = h / (heads / kvHeads)
                var s = (0..<count[r]).map { j -> Double in
                    (0..<d).reduce(0.0) { $0 + Double(q[r * heads * d + h * d + $1]) * Double(k[(seqStart[r] + j) * kvHeads * d + kvh * d + $1]) } * Double(scale)
                }
                let m = s.max()!
                s = s.map { Foundation.exp($0 - m) }
                let z = s.reduce(0, +)
                for i in 0..<d {
                    let ref = (0..<count[r]).reduce(0.0) { $0 + s[$1] / z * Double(v[(seqStart[r] + $1) * kvHeads * d + kvh * d + i]) }
                    XCTAssertEqual(Double(out[r * heads * d + h * d + i]), ref, accuracy: 1e-5)
                }
            }
        }
    }

    func testParallelChunksCoverRangeOnce() {
        var hits = [Int](repeating: 0, count: 1000)
        hits.withUnsafeMutableBufferPointer { h in
            Parallel.forChunks(1000, minChunk: 10) { chunk, range in
                XCTAssertLessThan(chunk, Parallel.workers)
                for i in range { h[i] += 1 }
            }
        }
        XCTAssertEqual(hits, [Int](repeating: 1, count: 1000))
    }
}
