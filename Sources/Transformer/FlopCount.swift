/// Floating-point operation counts used to turn measured throughputs into GFLOP/s.
///
/// Conventions (documented in benchmarks/README.md):
/// - a matmul with a [out × in] weight costs 2·out·in flops per token;
/// - per layer, a query row that attends to n keys costs 4·n·qDim flops (QKᵀ and P·V, 2 each);
/// - norms, RoPE, SwiGLU and softmax are left out (they are O(hidden) per token, well under 1%);
/// - a training step (forward + backward) costs 3× the forward: backward computes both the input and
///   the weight gradient of every matmul, each as large as the forward product.
public enum FlopCount {
    /// Matmul flops per token through all decoder layers (q, k, v, o, gate, up, down).
    public static func layerMatmulsPerToken(_ c: ModelConfig) -> Double {
        let h = Double(c.hiddenSize), q = Double(c.qDim), kv = Double(c.kvDim), i = Double(c.intermediateSize)
        let perLayer = 2 * (h * q + 2 * h * kv + q * h + 3 * h * i)
        return perLayer * Double(c.numHiddenLayers)
    }

    /// LM-head flops for one row of logits.
    public static func lmHeadPerRow(_ c: ModelConfig) -> Double { 2 * Double(c.hiddenSize) * Double(c.vocabSize) }

    /// Attention flops of one query row at position p (p + 1 keys), all layers.
    public static func attention(position p: Int, _ c: ModelConfig) -> Double {
        4 * Double(p + 1) * Double(c.qDim) * Double(c.numHiddenLayers)
    }

    /// Forward flops of a fresh (uncached) sequence of `length` tokens with `logitRows` LM-head rows.
    public static func prefill(length: Int, logitRows: Int, _ c: ModelConfig) -> Double {
        let l = Double(length)
        let att = 4 * (l * (l + 1) / 2) * Double(c.qDim) * Double(c.numHiddenLayers)
        return l * layerMatmulsPerToken(c) + Double(logitRows) * lmHeadPerRow(c) + att
    }

    /// Flops of decoding `newTokens` tokens one at a time after a prompt of `promptLength` tokens
    /// (each step: all layer matmuls, attention over the cache, one LM-head row). Excludes the prefill.
    public static func decode(promptLength: Int, newTokens: Int, _ c: ModelConfig) -> Double {
        var f = 0.0
        for k in 0..<newTokens {
            // The k-th step feeds the token at position promptLength + k - 1 (the first step is the prefill's
            // last logits row, already counted in the prefill); count every step uniformly as one row.
            f += layerMatmulsPerToken(c) + lmHeadPerRow(c) + attention(position: promptLength + k, c)
        }
        return f
    }
}
