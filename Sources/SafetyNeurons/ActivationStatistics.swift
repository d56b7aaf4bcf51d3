import Tensors

/// Which prompt set a pooled activation vector came from.
public enum PromptGroup: Int, Sendable, CaseIterable {
    case harmful = 0
    case harmless = 1

    public var name: String { self == .harmful ? "harmful" : "harmless" }
}

/// Welford running moments for one layer: per group a count, per neuron a mean and the sum of
/// squared deviations (M2). Each layer owns its storage, so different layers can be updated from
/// different threads at the same time without locks.
final class LayerMoments: @unchecked Sendable {
    let width: Int
    var counts: [Int] = [0, 0]
    /// [group][mean | m2][neuron]: 4 × width doubles.
    let storage: UnsafeMutablePointer<Double>

    init(width: Int) {
        self.width = width
        storage = .allocate(capacity: 4 * width)
        storage.initialize(repeating: 0, count: 4 * width)
    }

    deinit { storage.deallocate() }

    @inline(__always) func mean(_ g: Int) -> UnsafeMutablePointer<Double> { storage + (2 * g) * width }
    @inline(__always) func m2(_ g: Int) -> UnsafeMutablePointer<Double> { storage + (2 * g + 1) * width }

    /// Welford update with a block of pooled values for neurons lo..<lo+values.count; the count is
    /// bumped by the caller once the whole vector is in (every block sees the same new n).
    @inline(__always)
    func update(group g: Int, n: Int, lo: Int, values: UnsafeBufferPointer<Double>) {
        let mu = mean(g) + lo, m = m2(g) + lo
        let invN = 1.0 / Double(n)
        for j in 0..<values.count {
            let x = values[j]
            let delta = x - mu[j]
            mu[j] += delta * invN
            m[j] += delta * (x - mu[j])
        }
    }

    /// Chan et al.'s pairwise combination of two sets of moments.
    func merge(_ other: LayerMoments) {
        for g in 0..<2 {
            let na = counts[g], nb = other.counts[g]
            if nb == 0 { continue }
            let ma = mean(g), qa = m2(g), mb = other.mean(g), qb = other.m2(g)
            if na == 0 {
                ma.update(from: mb, count: width); qa.update(from: qb, count: width)
            } else {
                let n = Double(na + nb), fa = Double(na), fb = Double(nb)
                for j in 0..<width {
                    let delta = mb[j] - ma[j]
                    ma[j] += delta * fb / n
                    qa[j] += qb[j] + delta * delta * fa * fb / n
                }
            }
            counts[g] = na + nb
        }
    }
}

/// Streaming per-neuron first and second moments of pooled MLP activations, separately for harmful
/// and harmless prompts. Memory is O(layers × intermediate) whatever the number of prompts; moments
/// are kept in Double with Welford's update so a million prompts lose no precision.
///
/// Concurrency: adds for *different* layers may run concurrently (each layer has its own storage,
/// no locks). Adds for the same layer must be serialised by the caller, which is natural for a
/// forward-pass tap that fires once per layer per sequence. To parallelise over prompts instead,
/// give each worker its own `ActivationStatistics` and `merge` them afterwards.
public final class ActivationStatistics: @unchecked Sendable {
    public let layers: Int
    public let intermediateSize: Int
    let moments: [LayerMoments]

    public init(layers: Int, intermediateSize: Int) {
        precondition(layers > 0 && intermediateSize > 0, "statistics need at least one layer and one neuron")
        self.layers = layers
        self.intermediateSize = intermediateSize
        moments = (0..<layers).map { _ in LayerMoments(width: intermediateSize) }
    }

    /// Adds one prompt's pooled activations (`intermediateSize` values) for `layer`.
    public func add(pooled: UnsafeBufferPointer<Float>, layer: Int, group: PromptGroup) {
        checkLayer(layer)
        precondition(pooled.count == intermediateSize,
                     "pooled vector has \(pooled.count) values, expected \(intermediateSize)")
        let lm = moments[layer], g = group.rawValue, n = lm.counts[g] + 1
        withUnsafeTemporaryAllocation(of: Double.self, capacity: poolBlock) { buf in
            var lo = 0
            while lo < intermediateSize {
                let w = min(poolBlock, intermediateSize - lo)
                for j in 0..<w { buf[j] = Double(pooled[lo + j]) }
                lm.update(group: g, n: n, lo: lo, values: UnsafeBufferPointer(rebasing: buf[0..<w]))
                lo += w
            }
        }
        lm.counts[g] = n
    }

    public func add(pooled: [Float], layer: Int, group: PromptGroup) {
        pooled.withUnsafeBufferPointer { add(pooled: $0, layer: layer, group: group) }
    }

    /// Pools one sequence's activations [rows × intermediateSize] for `layer` and adds the result,
    /// without rounding the pooled values to Float and without allocating.
    public func add(activations: UnsafeBufferPointer<Float>, rows: Int, pooling: ActivationPooling,
                    layer: Int, group: PromptGroup) {
        checkLayer(layer)
        let lm = moments[layer], g = group.rawValue, n = lm.counts[g] + 1
        forEachPooledBlock(activations, rows: rows, columns: intermediateSize, mode: pooling) { lo, block in
            lm.update(group: g, n: n, lo: lo, values: UnsafeBufferPointer(block))
        }
        lm.counts[g] = n
    }

    /// Folds `other` (same shape) into this; the result equals having added both streams here.
    public func merge(_ other: ActivationStatistics) throws {
        guard other.layers == layers, other.intermediateSize == intermediateSize else {
            throw SafetyNeuronsError.shapeMismatch(what: "merged statistics",
                                                   expected: [layers, intermediateSize],
                                                   found: [other.layers, other.intermediateSize])
        }
        precondition(other !== self, "merging statistics into themselves")
        Parallel.forEach(layers) { l in self.moments[l].merge(other.moments[l]) }
    }

    public func count(layer: Int, group: PromptGroup) -> Int {
        checkLayer(layer)
        return moments[layer].counts[group.rawValue]
    }

    public func mean(layer: Int, neuron: Int, group: PromptGroup) -> Double {
        checkLayer(layer); checkNeuron(neuron)
        return moments[layer].mean(group.rawValue)[neuron]
    }

    /// Unbiased (n − 1) variance; NaN with fewer than two samples.
    public func variance(layer: Int, neuron: Int, group: PromptGroup) -> Double {
        checkLayer(layer); checkNeuron(neuron)
        let n = moments[layer].counts[group.rawValue]
        if n < 2 { return .nan }
        return max(0, moments[layer].m2(group.rawValue)[neuron]) / Double(n - 1)
    }

    private func checkLayer(_ l: Int) { precondition(l >= 0 && l < layers, "layer \(l) outside 0..<\(layers)") }
    private func checkNeuron(_ j: Int) {
        precondition(j >= 0 && j < intermediateSize, "neuron \(j) outside 0..<\(intermediateSize)")
    }
}
