/// How one prompt's per-position MLP activations become one value per neuron.
public enum ActivationPooling: String, Sendable, CaseIterable, Codable {
    /// Average over every templated prompt position.
    case mean
    /// The last templated position (the one that predicts the first response token).
    case last
    /// The largest value over every templated prompt position (NeuroStrike's pooling).
    case max
}

/// Columns per block when mean-pooling: the Double accumulators live on the stack
/// so pooling allocates nothing, and a block stays in L1 while rows stream past.
let poolBlock = 256

/// Walks `activations` [rows × columns] (row-major) in column blocks and hands each block's pooled
/// values (in Double) to `sink(firstColumn, values)`. Shared by float pooling and direct statistics updates.

func forEachPooledBlock(_ activations: UnsafeBufferPointer<Float>, rows: Int, columns: Int,
                        mode: ActivationPooling,
                        _ sink: (Int, UnsafeMutableBufferPointer<Double>) -> Void) {
    precondition(rows > 0 && columns > 0, "pooling needs at least one row and one column")
    precondition(activations.count >= rows * columns,
                 "activation buffer holds \(activations.count) values, need \(rows)×\(columns)")
    guard let src = activations.baseAddress else { return }
    withUnsafeTemporaryAllocation(of: Double.self, capacity: poolBlock) { acc in
        var lo = 0
        while lo < columns {
            let width = min(poolBlock, columns - lo)
            let block = UnsafeMutableBufferPointer(rebasing: acc[0..<width])
            switch mode {
            case .last:
                let row = src + (rows - 1) * columns + lo
                for j in 0..<width { block[j] = Double(row[j]) }
            case .max:
                let first = src + lo
                for j in 0..<width { block[j] = Double(first[j]) }
                for r in 1..<rows {
                    let row = src + r * columns + lo
                    for j in 0..<width where Double(row[j]) > block[j] { block[j] = Double(row[j]) }
                }
            case .mean:
                for j in 0..<width { block[j] = 0 }
                for r in 0..<rows {
                    let row = src + r * columns + lo
                    for j in 0..<width { block[j] += Double(row[j]) }
                }
                let inv = 1.0 / Double(rows)
                for j in 0..<width { block[j] *= inv }
            }
            sink(lo, block)
            lo += width
        }
    }
}

/// Pools one sequence's activations for one layer, [rows × columns] row-major, into `out` (≥ columns).
/// Mean pooling sums in Double so long prompts lose no precision before the statistics see them.

public func poolActivations(_ activations: UnsafeBufferPointer<Float>, rows: Int, columns: Int,
                            mode: ActivationPooling, into out: UnsafeMutableBufferPointer<Float>) {
    precondition(out.count >= columns, "output buffer holds \(out.count) values, need \(columns)")
    forEachPooledBlock(activations, rows: rows, columns: columns, mode: mode) { lo, block in
        for j in 0..<block.count { out[lo + j] = Float(block[j]) }
    }
}
