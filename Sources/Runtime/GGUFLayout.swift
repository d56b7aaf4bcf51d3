import Transformer

/// How llama.cpp's GGUF tensors map onto Hugging Face names and layout.
enum GGUFLayout {
    /// GGUF tensor name → HF parameter name, or nil for tensors we do not use (e.g. `rope_freqs.weight`).
    static func hfName(forGGUF name: String) -> String? {
        switch name {
        case "token_embd.weight": return "model.embed_tokens.weight"
        case "output_norm.weight": return "model.norm.weight"
        case "output.weight": return "lm_head.weight"
        default: break
        }
        let parts = name.split(separator: ".", maxSplits: 2).map(String.init)
        guard parts.count == 3, parts[0] == "blk", let layer = Int(parts[1]) else { return nil }
        let suffix: String
        switch parts[2] {
        case "attn_norm.weight": suffix = "input_layernorm.weight"
        case "attn_q.weight": suffix = "self_attn.q_proj.weight"
        case "attn_k.weight": suffix = "self_attn.k_proj.weight"
        case "attn_v.weight": suffix = "self_attn.v_proj.weight"
        case "attn_output.weight": suffix = "self_attn.o_proj.weight"
        case "attn_q.bias": suffix = "self_attn.q_proj.bias"
        case "attn_k.bias": suffix = "self_attn.k_proj.bias"
        case "attn_v.bias": suffix = "self_attn.v_proj.bias"
        case "ffn_norm.weight": suffix = "post_attention_layernorm.weight"
        case "ffn_gate.weight": suffix = "mlp.gate_proj.weight"
        case "ffn_up.weight": suffix = "mlp.up_proj.weight"
        case "ffn_down.weight": suffix = "mlp.down_proj.weight"
        default: return nil
        }
        return "model.layers.\(layer).\(suffix)"
    }

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
