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
        guard let suffix = suffixes.first(where: { $0.gguf == parts[2] })?.hf else { return nil }
        return "model.layers.\(layer).\(suffix)"
    }

    /// HF parameter name → llama.cpp's GGUF tensor name (the inverse of `hfName`), nil for names it has none for.
    static func ggufName(forHF name: String) -> String? {
        switch name {
        case "model.embed_tokens.weight": return "token_embd.weight"
        case "model.norm.weight": return "output_norm.weight"
        case "lm_head.weight": return "output.weight"
        default: break
        }
        let prefix = "model.layers."
        guard name.hasPrefix(prefix) else { return nil }
        let rest = name.dropFirst(prefix.count)
        guard let dot = rest.firstIndex(of: "."), let layer = Int(rest[..<dot]) else { return nil }
        let suffix = String(rest[rest.index(after: dot)...])
        for candidate in suffixes where candidate.hf == suffix { return "blk.\(layer).\(candidate.gguf)" }
        return nil
    }

    /// Per-layer tensors: (GGUF suffix, HF suffix).
    static let suffixes: [(gguf: String, hf: String)] = [
        ("attn_norm.weight", "input_layernorm.weight"),
        ("attn_q.weight", "self_attn.q_proj.weight"), ("attn_k.weight", "self_attn.k_proj.weight"),
        ("attn_v.weight", "self_attn.v_proj.weight"), ("attn_output.weight", "self_attn.o_proj.weight"),
        ("attn_q.bias", "self_attn.q_proj.bias"), ("attn_k.bias", "self_attn.k_proj.bias"), ("attn_v.bias", "self_attn.v_proj.bias"),
        ("ffn_norm.weight", "post_attention_layernorm.weight"),
        ("ffn_gate.weight", "mlp.gate_proj.weight"), ("ffn_up.weight", "mlp.up_proj.weight"), ("ffn_down.weight", "mlp.down_proj.weight"),
    ]

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
