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
        scratch: UnsafeMutablePointer<Float>
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
                    Kernels.softmax(scores, count: n)
                    oh.update(repeating: 0, count: headDim)
                    for j in 0..<n {
                        Kernels.axpy(scores[j], vBase + j * kvStride, oh, count: headDim)
                    }
                }
            }
        }
    }
}
