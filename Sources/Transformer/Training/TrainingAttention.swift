import Foundation
import Tensors

/// Causal GQA attention over a ragged batch: sequence s occupies packed rows [offset, offset+length).
/// Forward keeps only the per-(row, head) logsumexp; backward recomputes the probabilities from q, k
/// (flash-attention style), so no [L×L×heads] tensor outlives one (sequence, head) pair.
enum TrainAttention {
    struct Layout {
        var heads: Int, kvHeads: Int, headDim: Int
        var qDim: Int { heads * headDim }
        var kvDim: Int { kvHeads * headDim }
        var scale: Float { 1 / Float(headDim).squareRoot() }
    }

    /// q[T×qDim], k,v[T×kvDim] → out[T×qDim], lse[T×heads]. `scratch` holds ≥ maxLen² floats.
    static func forward(out: UnsafeMutablePointer<Float>, lse: UnsafeMutablePointer<Float>,
                        q: UnsafePointer<Float>, k: UnsafePointer<Float>, v: UnsafePointer<Float>,
                        offsets: [Int], lengths: [Int], layout a: Layout, scratch: UnsafeMutablePointer<Float>) {
        let d = a.headDim, group = a.heads / a.kvHeads
        for (off, L) in zip(offsets, lengths) where L > 0 {
            for h in 0..<a.heads {
                let g = h / group
                let Q = q + off * a.qDim + h * d, K = k + off * a.kvDim + g * d, V = v + off * a.kvDim + g * d
                let S = scratch
                BLAS.sgemm(transB: true, m: L, n: L, k: d, alpha: a.scale, a: Q, lda: a.qDim, b: K, ldb: a.kvDim,
                           c: S, ldc: L)
                Parallel.forRanges(L, minChunk: 32) { r in
                    for i in r {
                        let row = S + i * L
                        var m = -Float.infinity
                        for j in 0...i { m = max(m, row[j]) }
                        var sum: Float = 0
                        for j in 0...i { let e = expf(row[j] - m); row[j] = e; sum += e }
                        let inv = 1 / sum
                        for j in 0...i { row[j] *= inv }
                        for j in (i + 1)..<L { row[j] = 0 }
                        lse[(off + i) * a.heads + h] = m + logf(sum)
                    }
                }
                BLAS.sgemm(m: L, n: d, k: L, a: S, lda: L, b: V, ldb: a.kvDim,
                           c: out + off * a.qDim + h * d, ldc: a.qDim)
            }
        }
    }

    /// dout[T×qDim] → dq[T×qDim] (overwrite), dk, dv[T×kvDim] (+=). `scratch` holds ≥ 2·maxLen² floats.
    static func backward(dq: UnsafeMutablePointer<Float>, dk: UnsafeMutablePointer<Float>, dv: UnsafeMutablePointer<Float>,
                         dout: UnsafePointer<Float>, q: UnsafePointer<Float>, k: UnsafePointer<Float>, v: UnsafePointer<Float>,
                         lse: UnsafePointer<Float>, offsets: [Int], lengths: [Int], layout a: Layout,
                         scratch: UnsafeMutablePointer<Float>) {
        let d = a.headDim, group = a.heads / a.kvHeads
        for (off, L) in zip(offsets, lengths) where L > 0 {
            let P = scratch, dP = scratch + L * L
            for h in 0..<a.heads {
                let g = h / group
                let Q = q + off * a.qDim + h * d, K = k + off * a.kvDim + g * d, V = v + off * a.kvDim + g * d
                let dO = dout + off * a.qDim + h * d
                BLAS.sgemm(transB: true, m: L, n: L, k: d, alpha: a.scale, a: Q, lda: a.qDim, b: K, ldb: a.kvDim,
                           c: P, ldc: L)
                Parallel.forRanges(L, minChunk: 32) { r in
                    for i in r {
                        let row = P + i * L, m = lse[(off + i) * a.heads + h]
                        for j in 0...i { row[j] = expf(row[j] - m) }
                        for j in (i + 1)..<L { row[j] = 0 }
                    }
                }
                BLAS.sgemm(transB: true, m: L, n: L, k: d, a: dO, lda: a.qDim, b: V, ldb: a.kvDim, c: dP, ldc: L)
                BLAS.sgemm(transA: true, m: L, n: d, k: L, a: P, lda: L, b: dO, ldb: a.qDim, beta: 1,
                           c: dv + off * a.kvDim + g * d, ldc: a.kvDim)
                Parallel.forRanges(L, minChunk: 32) { r in
                    for i in r {
                        let p = P + i * L, dp = dP + i * L
                        var dot: Float = 0
                        for j in 0...i { dot += p[j] * dp[j] }
                        for j in 0...i { dp[j] = p[j] * (dp[j] - dot) }
                        for j in (i + 1)..<L { dp[j] = 0 }
                    }
                }
                BLAS.sgemm(m: L, n: d, k: L, alpha: a.scale, a: dP, lda: L, b: K, ldb: a.kvDim,
                           c: dq + off * a.qDim + h * d, ldc: a.qDim)
                BLAS.sgemm(transA: true, m: L, n: d, k: L, alpha: a.scale, a: dP, lda: L, b: Q, ldb: a.qDim, beta: 1,
                           c: dk + off * a.kvDim + g * d, ldc: a.kvDim)
            }
        }
    }
}
