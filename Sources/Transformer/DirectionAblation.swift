import Tensors

/// Directional ablation (Arditi et al. 2024, "Refusal in language models is mediated by a single direction"):
/// a unit direction r is removed from the residual stream, x ← x − (x·r) r, at every position wherever the
/// stream is read — the input of every decoder layer, the input of every post-attention norm (so the MLP does not
/// see the attention output's r component) and the input of the final norm. That is exactly what the weights
/// written by `orthogonalize` compute: no matrix can then write along r.
public enum DirectionAblation {
    /// `r / ‖r‖`, or an error when r has the wrong length, a non-finite entry or no length at all.
    public static func unit(_ r: [Float], hiddenSize: Int, source: String) throws -> [Float] {
        guard r.count == hiddenSize else {
            throw InferenceError.invalidInput(source: source, reason: "direction has \(r.count) entries, the model's hidden size is \(hiddenSize)")
        }
        var n2 = 0.0
        for x in r {
            guard x.isFinite else { throw InferenceError.invalidInput(source: source, reason: "direction holds a non-finite value") }
            n2 += Double(x) * Double(x)
        }
        let norm = n2.squareRoot()
        guard norm > 1e-20, norm.isFinite else {
            throw InferenceError.invalidInput(source: source, reason: "direction has zero length")
        }
        return r.map { Float(Double($0) / norm) }
    }

    /// Projects r out of every matrix and vector that writes the residual stream, in place: the embedding rows
    /// (E ← E − (E r) rᵀ), every `o_proj` and `down_proj` (W ← W − r (rᵀ W), W being [hidden × in] in HF layout).
    /// Llama-family models have no bias that writes the residual (Qwen2's q/k/v biases feed attention only).
    ///
    /// The LM head must keep reading the original embedding: with tied embeddings the result is untied
    /// (`tieWordEmbeddings` false, `lmHead` a copy of the original embedding). `w`'s tensors are modified and
    /// shared with the result, so use only the returned weights afterwards.
    ///
    /// Only exact when every write to the residual is linear in a weight: sandwich-norm recipes (Gemma) add
    /// norm((1 + w)·x̂) outputs, which no weight edit can keep orthogonal to r, so they are refused; ablate the
    /// direction in the activations (`setAblatedDirection`) instead.
    public static func orthogonalize(_ w: ModelWeights, direction: [Float]) throws -> ModelWeights {
        let c = w.config, H = c.hiddenSize
        if c.recipe.normPlacement == .sandwich {
            throw TransformerError.unsupported(source: "orthogonalize",
                reason: "weight orthogonalisation of a \(c.modelType) model: its post-sublayer norms write the residual stream non-linearly; ablate the direction in the activations instead")
        }
        let r = try unit(direction, hiddenSize: H, source: "orthogonalize")
        var config = c
        var head = w.lmHead
        if c.tieWordEmbeddings {
            head = w.embedTokens.copy()
            config.tieWordEmbeddings = false
        }
        r.withUnsafeBufferPointer { rb in
            let rp = rb.baseAddress!
            // Embedding: each row e ← e − (e·r) r.
            let E = w.embedTokens.pointer
            Parallel.forRanges(c.vocabSize, minChunk: 256) { range in
                for v in range {
                    let row = E + v * H
                    var d = 0.0
                    for h in 0..<H { d += Double(row[h]) * Double(rp[h]) }
                    Kernels.axpy(Float(-d), rp, row, count: H)
                }
            }
            // Matrices writing the residual: W ← W − r (rᵀ W).
            func fromLeft(_ t: Tensor) {
                let cols = t.shape[1], p = t.pointer
                var u = [Double](repeating: 0, count: cols)
                for h in 0..<H {
                    let rh = Double(rp[h]), row = p + h * cols
                    for j in 0..<cols { u[j] += rh * Double(row[j]) }
                }
                let uf = u.map(Float.init)
                uf.withUnsafeBufferPointer { ub in
                    for h in 0..<H { Kernels.axpy(-rp[h], ub.baseAddress!, p + h * cols, count: cols) }
                }
            }
            Parallel.forEach(w.layers.count) { l in
                fromLeft(w.layers[l].oProj)
                fromLeft(w.layers[l].downProj)
            }
        }
        return ModelWeights(config: config, embedTokens: w.embedTokens, layers: w.layers, norm: w.norm, lmHead: head)
    }
}

extension InferenceModel {
    /// Ablates `direction` (normalised here) in every later forward pass, generation and scoring call of this
    /// engine, until set to nil. Caches of intact states (`completionLogProbs`) refuse to run meanwhile.
    public func setAblatedDirection(_ direction: [Float]?) throws {
        guard let direction else { ablatedDirection = nil; return }
        ablatedDirection = try DirectionAblation.unit(direction, hiddenSize: config.hiddenSize, source: "ablated direction")
    }

    /// x ← x − (x·r) r for the first `rows` rows of `ws.x`.
    func projectOut(_ r: [Float], rows: Int) {
        let H = config.hiddenSize, x = ws.x
        r.withUnsafeBufferPointer { rb in
            let rp = rb.baseAddress!
            Parallel.forRanges(rows, minChunk: max(1, 32768 / max(1, H))) { range in
                for i in range {
                    let row = x + i * H
                    Kernels.axpy(-Kernels.dot(row, rp, count: H), rp, row, count: H)
                }
            }
        }
    }
}

/// Streaming means of the residual stream over two groups of prompts (0 = harmful, 1 = harmless), at every tap
/// point of a `ResidualTap` and at each sequence's last `positions` rows (the chat template's generation prompt),
/// accumulated in double precision; memory does not grow with the number of prompts.
public final class ResidualMeans {
    public let points: Int
    public let positions: Int
    public let hidden: Int
    private var sums: [[Double]]
    /// Sequences added per group and point.
    public private(set) var counts: [[Int]]

    public init(points: Int, positions: Int, hidden: Int) {
        precondition(points > 0 && positions > 0 && hidden > 0)
        self.points = points; self.positions = positions; self.hidden = hidden
        sums = Array(repeating: [Double](repeating: 0, count: points * positions * hidden), count: 2)
        counts = Array(repeating: [Int](repeating: 0, count: points), count: 2)
    }

    /// Adds one sequence's residual [rows × hidden] at `point`: its last `positions` rows (rows ≥ positions).
    public func add(point: Int, group: Int, residual: UnsafeBufferPointer<Float>, rows: Int) {
        precondition(group == 0 || group == 1, "group is 0 (harmful) or 1 (harmless)")
        precondition(point >= 0 && point < points && rows >= positions && residual.count >= rows * hidden)
        let first = rows - positions
        sums[group].withUnsafeMutableBufferPointer { s in
            for p in 0..<positions {
                let src = residual.baseAddress! + (first + p) * hidden
                let dst = s.baseAddress! + (point * positions + p) * hidden
                for h in 0..<hidden { dst[h] += Double(src[h]) }
            }
        }
        counts[group][point] += 1
    }

    /// Mean of `group` [points × positions × hidden]; nil until every point has seen the same, non-zero count.
    public func mean(group: Int) -> [Double]? {
        guard let n = counts[group].first, n > 0, counts[group].allSatisfy({ $0 == n }) else { return nil }
        return sums[group].map { $0 / Double(n) }
    }

    /// mean(harmful) − mean(harmless), [points × positions × hidden] in f32.
    public func meanDifference() -> [Float]? {
        guard let a = mean(group: 0), let b = mean(group: 1) else { return nil }
        return zip(a, b).map { Float($0 - $1) }
    }
}
