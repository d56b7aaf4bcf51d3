import Foundation
import Transformer

/// What a DPO run will hold in memory, item by item, and the settings that make it fit a budget.
///
/// The estimate counts what the trainer allocates: f32 weights, one f32 gradient per parameter (exact global-norm
/// clipping needs every gradient before any update, so the optimizer step is not fused into the backward pass),
/// the optimizer's moments, the activations a micro-batch keeps for backward (all layers, or with recomputation
/// only the layer inputs plus one layer's worth), the backward's per-layer work buffers, the LM head's
/// probabilities or its chunk buffers, and a fixed allowance for the process itself (code, tokenizer, pairs).
/// `safeneuron bench --shape` measures peak RSS beside this estimate.
public struct TrainingMemoryPlan: Sendable, Equatable {
    public struct Item: Sendable, Equatable { public var name: String; public var bytes: Int }

    public var moments: MomentFormat
    public var recomputeLayers: Bool
    public var items: [Item]
    public var totalBytes: Int { items.reduce(0) { $0 + $1.bytes } }

    /// Process baseline measured on the default model before any tensor exists (runtime, tokenizer, pairs).
    public static let processAllowance = 400 << 20

    /// The estimate for one setting. `tokens` is the longest micro-batch's packed token count (chosen + rejected
    /// after truncation), `completionRows` its completion tokens (the LM head rows).
    public static func estimate(config c: ModelConfig, optimizer: OptimizerKind, moments: MomentFormat,
                                recomputeLayers: Bool, tokens: Int, completionRows: Int,
                                logitsBudgetBytes: Int = 1 << 30, lmHeadChunkElements: Int = 1 << 23) -> TrainingMemoryPlan {
        let params = ModelWeights.parameterCount(c)
        let H = c.hiddenSize, I = c.intermediateSize, T = max(1, tokens), V = c.vocabSize, L = c.numHiddenLayers
        var items: [Item] = []
        items.append(Item(name: "weights (f32)", bytes: 4 * params))
        items.append(Item(name: "gradients (f32)", bytes: 4 * params))
        if optimizer == .adamw {
            items.append(Item(name: "AdamW moments (\(moments.rawValue))", bytes: moments.bytesPerElement * params))
        }
        let keptAll = TrainingModel.keptActivationBytes(tokens: T, config: c)
        let oneLayer = keptAll / max(1, L)
        items.append(Item(name: "layer inputs", bytes: 4 * T * H * (L + 1)))
        items.append(Item(name: recomputeLayers ? "activations (one layer, recomputed)" : "activations (all layers kept)",
                          bytes: recomputeLayers ? oneLayer : keptAll))
        // Backward's buffers: dh [T×I], dxn, datt, dq [T×qDim], dk, dv [T×kvDim], residual gradients, work (xn1,
        // xn2, h), and the attention scratch.
        let work = 4 * T * (2 * I + 4 * H + 2 * c.qDim + 2 * c.kvDim) + 4 * T * (c.qDim + 2 * c.kvDim)
        items.append(Item(name: "backward work buffers", bytes: work))
        let R = max(1, completionRows)
        let keepProbs = c.finalLogitSoftcap == nil && R * V <= logitsBudgetBytes / 4
        let chunk = max(1, min(R, lmHeadChunkElements / V))
        items.append(Item(name: keepProbs ? "LM-head probabilities" : "LM-head chunk",
                          bytes: (keepProbs ? 4 * R * V : 4 * chunk * V) + 4 * chunk * H + 4 * chunk * V))
        items.append(Item(name: "process (runtime, tokenizer, pairs)", bytes: processAllowance))
        return TrainingMemoryPlan(moments: moments, recomputeLayers: recomputeLayers, items: items)
    }

    /// The first setting that fits `budgetBytes`, in order of preference: f32 moments (PyTorch's AdamW exactly)
    /// before bf16, kept activations (faster) before recomputation. `moments` fixes the format when given.
    /// Throws, listing the smallest plan's items, when none fits.
    public static func choose(budgetBytes: Int, config c: ModelConfig, optimizer: OptimizerKind, moments: MomentFormat?,
                              tokens: Int, completionRows: Int) throws -> TrainingMemoryPlan {
        let formats: [MomentFormat] = optimizer == .sgd ? [.f32] : (moments.map { [$0] } ?? [.f32, .bf16])
        var smallest: TrainingMemoryPlan?
        for f in formats {
            for recompute in [false, true] {
                let p = estimate(config: c, optimizer: optimizer, moments: f, recomputeLayers: recompute,
                                 tokens: tokens, completionRows: completionRows)
                if p.totalBytes <= budgetBytes { return p }
                if smallest == nil || p.totalBytes < smallest!.totalBytes { smallest = p }
            }
        }
        throw MemoryPlanError(budgetBytes: budgetBytes, smallest: smallest!)
    }

    /// Human summary, one item a line.
    public var summary: String {
        func line(_ name: String, _ bytes: Int) -> String {
            "  " + name.padding(toLength: 40, withPad: " ", startingAt: 0) + String(format: "%8.2f GiB", Double(bytes) / Double(1 << 30))
        }
        return (items.map { line($0.name, $0.bytes) } + [line("total", totalBytes)]).joined(separator: "\n")
    }

    public var json: [String: Any] {
        ["moments": moments.rawValue, "recompute_layers": recomputeLayers, "total_bytes": totalBytes,
         "items": items.map { ["name": $0.name, "bytes": $0.bytes] }]
    }
}

public struct MemoryPlanError: Error, CustomStringConvertible {
    public let budgetBytes: Int
    public let smallest: TrainingMemoryPlan
    public var description: String {
        String(format: "training does not fit the memory budget of %.2f GiB: the smallest plan (%@ moments, %@) needs %.2f GiB:\n",
               Double(budgetBytes) / Double(1 << 30), smallest.moments.rawValue,
               smallest.recomputeLayers ? "layers recomputed" : "activations kept", Double(smallest.totalBytes) / Double(1 << 30))
            + smallest.summary
            + "\nshorten --max-length, lower --batch-size (use --grad-accum for the same effective batch), or raise --memory-budget"
    }
}
