#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Causal grouped-query attention over packed rows.
///
/// Each query row r attends to `keyCount[r]` consecutive key/value rows starting at row
/// `keyStart[r]` of `keys`/`values` (row stride `kvStride`). That one description covers a ragged
/// prefill (keys are the batch's own rows, start = the sequence's first row, count = position + 1)
/// and cached decoding (keys live in a per-sequence cache slot) alike.
public enum Attention {
    /// Scratch floats `causal` needs for a given longest key count.
    public static func scratchCount(maxKeys: Int) -> Int { Parallel.workers * max(1, maxKeys) }

    /// out[r, h·d ..< (h+1)·d] = softmax(q_h · Kᵀ · scale) · V for head h, kv head h / (heads / kvHeads).
    /// With `softcap`, scores become cap · tanh(score / cap) before the softmax (Gemma 2). A sliding window is the
    /// caller's choice of `keyStart`/`keyCount`.
    ///
    /// Tight SIMD loops rather than per-head sgemm: each (row, kv head) item streams its keys once
    /// for all query heads of the group, and rows are split across `Parallel` workers.
    /// `scratch` must hold `scratchCount(maxKeys:)` floats.
    public static func causal(
        q: UnsafePointer<Float>, qStride: Int, rows: Int,
        heads: Int, kvHeads: Int, headDim: Int, scale: Float,
        keys: UnsafePointer<Float>, values: UnsafePointer<Float>, kvStride: Int,
        keyStart: UnsafePointer<Int>, keyCount: UnsafePointer<Int>, maxKeys: Int,
        out: UnsafeMutablePointer<Float>, outStride: Int,
        scratch: UnsafeMutablePointer<Float>, softcap: Float? = nil
    ) {
        let group = heads / kvHeads
        let items = rows * kvHeads
        let work = max(1, maxKeys) * headDim * group
        Parallel.forChunks(items, minChunk: max(1, 32768 / max(1, work))) { chunk, range in
            let scores = scratch + chunk * max(1, maxKeys)
            for item in range {
                let r = item / kvHeads, kvh = item % kvHeads
                let n = keyCount[r]
                let kBase = keys + keyStart[r] * kvStride + kvh * headDim
                let vBase = values + keyStart[r] * kvStride + kvh * headDim
                for g in 0..<group {
                    let h = kvh * group + g
                    let qh = q + r * qStride + h * headDim
                    let oh = out + r * outStride + h * headDim
                    for j in 0..<n {
                        scores[j] = Kernels.dot(qh, kBase + j * kvStride, count: headDim) * scale
                    }
                    if let cap = softcap { for j in 0..<n { scores[j] = tanhf(scores[j] / cap) * cap } }
                    Kernels.softmax(scores, count: n)
                    weightedSum(scores, n, vBase, kvStride, headDim, oh)
                }
            }
        }
    }

    /// out[0..<d] = Σ_j p[j] · v[j·stride ..< j·stride + d], accumulating 64/16-column blocks in
    /// registers so `out` is written once.
    @inlinable @inline(__always)
    static func weightedSum(_ p: UnsafePointer<Float>, _ n: Int, _ v: UnsafePointer<Float>, _ stride: Int,
                            _ d: Int, _ out: UnsafeMutablePointer<Float>) {
        typealias V = Kernels.V16
        var c = 0
        while c + 64 <= d {
            var a0 = V(), a1 = V(), a2 = V(), a3 = V()
            for j in 0..<n {
                let w = V(repeating: p[j]), row = v + j * stride + c
                a0 += w * Kernels.load(row); a1 += w * Kernels.load(row + 16)
                a2 += w * Kernels.load(row + 32); a3 += w * Kernels.load(row + 48)
            }
            Kernels.store(a0, out + c); Kernels.store(a1, out + c + 16)
            Kernels.store(a2, out + c + 32); Kernels.store(a3, out + c + 48)
            c += 64
        }
        while c + 16 <= d {
            var a = V()
            for j in 0..<n { a += V(repeating: p[j]) * Kernels.load(v + j * stride + c) }
            Kernels.store(a, out + c)
            c += 16
        }
        while c < d {
            var a: Float = 0
            for j in 0..<n { a += p[j] * v[j * stride + c] }
            out[c] = a
            c += 1
        }
    }
}
