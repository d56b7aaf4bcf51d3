import Foundation
import Tensors

/// Causal GQA attention over a ragged batch: sequence s occupies packed rows [offset, offset+length).
/// Forward keeps only the per-(row, head) logsumexp; backward recomputes the probabilities from q, k
/// (flash-attention style), so no [L×L×heads] tensor outlives one (sequence, head) pair.
enum TrainAttention {
    struct Layout {
        var heads: Int, kvHeads: Int, headDim: Int
        /// Multiplier of q·k.
        var scale: Float
        /// Keys a query sees in a sliding-window layer (its own included); nil for full causal attention.
        var window: Int? = nil
        /// Query rows per causal block: each block's products stop at its last row's keys.
        var block = 64
        var qDim: Int { heads * headDim }
        var kvDim: Int { kvHeads * headDim }
        /// First key row query row i sees.
        func firstKey(_ i: Int) -> Int { window.map { max(0, i - $0 + 1) } ?? 0 }
    }

    /// Floats of scratch `forward`/`backward` need for sequences of at most `maxLen` tokens.
    static func scratchCount(maxLen: Int) -> Int { max(1, Parallel.workers * 2 * maxLen * maxLen) }

    /// The (sequence, head) items are spread over our workers and each runs single-threaded sgemms:
    /// many small threaded sgemms interleaved with our own parallel loops made OpenBLAS's spinning
    /// threads and ours fight over the cores. Items are dealt round-robin so long sequences spread evenly.
    static func forEachItem(_ lengths: [Int], heads: Int, maxLen: Int, scratch: UnsafeMutablePointer<Float>,
                            _ body: (_ seq: Int, _ head: Int, _ scratch: UnsafeMutablePointer<Float>) -> Void) {
        var items: [(Int, Int)] = []
        items.reserveCapacity(lengths.count * heads)
        for (s, L) in lengths.enumerated() where L > 0 { for h in 0..<heads { items.append((s, h)) } }
        items.sort { lengths[$0.0] > lengths[$1.0] }
        let workers = max(1, min(Parallel.workers, items.count))
        let per = 2 * maxLen * maxLen
        BLAS.setThreads(1)
        defer { BLAS.setThreads(blasThreads) }
        items.withUnsafeBufferPointer { it in
            Parallel.forChunks(workers) { _, r in
                for w in r {
                    var i = w
                    while i < it.count { body(it[i].0, it[i].1, scratch + w * per); i += workers }
                }
            }
        }
    }

    /// OpenBLAS's thread count outside attention: its own environment variables, else one per core.
    static let blasThreads: Int = {
        let env = ProcessInfo.processInfo.environment
        for key in ["OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS"] { if let v = env[key].flatMap(Int.init), v > 0 { return v } }
        return Parallel.workers
    }()

    /// q[T×qDim], k,v[T×kvDim] → out[T×qDim], lse[T×heads]. `scratch` holds ≥ `scratchCount(maxLen:)` floats.
    static func forward(out: UnsafeMutablePointer<Float>, lse: UnsafeMutablePointer<Float>,
                        q: UnsafePointer<Float>, k: UnsafePointer<Float>, v: UnsafePointer<Float>,
                        offsets: [Int], lengths: [Int], layout a: Layout, scratch: UnsafeMutablePointer<Float>) {
        let d = a.headDim, group = a.heads / a.kvHeads
        forEachItem(lengths, heads: a.heads, maxLen: lengths.max() ?? 0, scratch: scratch) { s, h, S in
            let off = offsets[s], L = lengths[s]
            let g = h / group
            let Q = q + off * a.qDim + h * d, K = k + off * a.kvDim + g * d, V = v + off * a.kvDim + g * d
            let O = out + off * a.qDim + h * d
            // Row blocks only multiply the key columns they can see: about half of the full square.
            var i0 = 0
            while i0 < L {
                let i1 = min(L, i0 + max(1, a.block)), m = i1 - i0
                BLAS.sgemm(transB: true, m: m, n: i1, k: d, alpha: a.scale, a: Q + i0 * a.qDim, lda: a.qDim, b: K, ldb: a.kvDim,
                           c: S + i0 * L, ldc: L)
                for i in i0..<i1 {
                    let row = S + i * L, lo = a.firstKey(i), n = i + 1 - lo
                    let mx = Vec.max(row + lo, n)
                    let sum = Vec.expShift(row + lo, n, mx)
                    Vec.scale(row + lo, n, 1 / sum)
                    row.update(repeating: 0, count: lo)
                    (row + i + 1).update(repeating: 0, count: i1 - i - 1)
                    lse[(off + i) * a.heads + h] = mx + logf(sum)
                }
                BLAS.sgemm(m: m, n: d, k: i1, a: S + i0 * L, lda: L, b: V, ldb: a.kvDim, c: O + i0 * a.qDim, ldc: a.qDim)
                i0 = i1
            }
        }
    }

    /// dout[T×qDim] → dq[T×qDim] (overwrite), dk, dv[T×kvDim] (+=). `scratch` holds ≥ `scratchCount(maxLen:)` floats.
    /// dk/dv of one kv head are shared by its query heads, so items of one kv group run on one worker.
    static func backward(dq: UnsafeMutablePointer<Float>, dk: UnsafeMutablePointer<Float>, dv: UnsafeMutablePointer<Float>,
                         dout: UnsafePointer<Float>, q: UnsafePointer<Float>, k: UnsafePointer<Float>, v: UnsafePointer<Float>,
                         lse: UnsafePointer<Float>, offsets: [Int], lengths: [Int], layout a: Layout,
                         scratch: UnsafeMutablePointer<Float>) {
        let d = a.headDim, group = a.heads / a.kvHeads
        forEachItem(lengths, heads: a.kvHeads, maxLen: lengths.max() ?? 0, scratch: scratch) { s, g, scr in
            let off = offsets[s], L = lengths[s]
            let P = scr, dP = scr + L * L
            for h in (g * group)..<((g + 1) * group) {
                let Q = q + off * a.qDim + h * d, K = k + off * a.kvDim + g * d, V = v + off * a.kvDim + g * d
                let dO = dout + off * a.qDim + h * d
                let dQ = dq + off * a.qDim + h * d, dK = dk + off * a.kvDim + g * d, dV = dv + off * a.kvDim + g * d
                var i0 = 0
                while i0 < L {
                    let i1 = min(L, i0 + max(1, a.block)), m = i1 - i0
                    let Pb = P + i0 * L, dPb = dP + i0 * L, Qb = Q + i0 * a.qDim, dOb = dO + i0 * a.qDim
                    BLAS.sgemm(transB: true, m: m, n: i1, k: d, alpha: a.scale, a: Qb, lda: a.qDim, b: K, ldb: a.kvDim,
                               c: Pb, ldc: L)
                    for i in i0..<i1 {
                        let row = P + i * L, lo = a.firstKey(i)
                        Vec.expShift(row + lo, i + 1 - lo, lse[(off + i) * a.heads + h])
                        row.update(repeating: 0, count: lo)
                        (row + i + 1).update(repeating: 0, count: i1 - i - 1)
                    }
                    BLAS.sgemm(transB: true, m: m, n: i1, k: d, a: dOb, lda: a.qDim, b: V, ldb: a.kvDim, c: dPb, ldc: L)
                    BLAS.sgemm(transA: true, m: i1, n: d, k: m, a: Pb, lda: L, b: dOb, ldb: a.qDim, beta: 1,
                               c: dV, ldc: a.kvDim)
                    for i in i0..<i1 {
                        let p = P + i * L, dp = dP + i * L, n = i + 1
                        let dot = Vec.dot(p, dp, n), vd = Vec.V(repeating: dot)
                        var j = 0
                        while j + 16 <= n { Vec.store(Vec.load(p + j) * (Vec.load(dp + j) - vd), dp + j); j += 16 }
                        while j < n { dp[j] = p[j] * (dp[j] - dot); j += 1 }
                        (dp + n).update(repeating: 0, count: i1 - n)
                    }
                    BLAS.sgemm(m: m, n: d, k: i1, alpha: a.scale, a: dPb, lda: L, b: K, ldb: a.kvDim,
                               c: dQ + i0 * a.qDim, ldc: a.qDim)
                    BLAS.sgemm(transA: true, m: i1, n: d, k: m, alpha: a.scale, a: dPb, lda: L, b: Qb, ldb: a.qDim, beta: 1,
                               c: dK, ldc: a.kvDim)
                    i0 = i1
                }
            }
        }
    }
}
