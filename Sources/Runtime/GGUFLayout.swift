import Transformer

/// How llama.cpp's GGUF tensors map onto Hugging Face names and layout.
/// llama.cpp's Q/K row order for families whose converter permutes it (`Architecture.ggufPermutesQK`).
enum GGUFLayout {
    /// llama.cpp's converter reorders the rows of Q and K (and their biases) of `llama`-architecture models so
    /// that each head's rotary pairs are adjacent (GGML's "normal" RoPE). HF keeps the two halves apart
    /// (rotate_half). Row `h·d + 2i + j` of the GGUF tensor is row `h·d + j·d/2 + i` of the HF tensor.
    static func unpermuteRows(_ data: UnsafeMutablePointer<Float>, rows: Int, columns: Int, heads: Int) {
        reorderRows(data, rows: rows, columns: columns, heads: heads, toHF: true)
    }

    /// The inverse of `unpermuteRows`, for writing GGUF-layout tensors.
    static func permuteRows(_ data: UnsafeMutablePointer<Float>, rows: Int, columns: Int, heads: Int) {
        reorderRows(data, rows: rows, columns: columns, heads: heads, toHF: false)
    }

    private static func reorderRows(_ data: UnsafeMutablePointer<Float>, rows: Int, columns: Int, heads: Int, toHF: Bool) {
        guard heads > 0, rows % heads == 0 else { return }
        let headDim = rows / heads
        let half = headDim / 2
        let scratch = UnsafeMutablePointer<Float>.allocate(capacity: headDim * columns)
        defer { scratch.deallocate() }
        for h in 0..<heads {
            let base = data + h * headDim * columns
            scratch.update(from: base, count: headDim * columns)
            for i in 0..<half {
                for j in 0..<2 {
                    let ggufRow = 2 * i + j, hfRow = j * half + i
                    let (dst, src) = toHF ? (hfRow, ggufRow) : (ggufRow, hfRow)
                    (base + dst * columns).update(from: scratch + src * columns, count: columns)
                }
            }
        }
    }
}
