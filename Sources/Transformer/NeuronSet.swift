/// A set of MLP neurons, addressed as (layer, index into the intermediate dimension).
///
/// "Neuron j of layer l" is column j of the `down_proj` input, i.e. row j of `gate_proj`/`up_proj`
/// and column j of `down_proj`. Stored per layer as sorted, de-duplicated indices so kernels can
/// walk it without hashing.
public struct NeuronSet: Sendable, Equatable, Hashable {
    public private(set) var perLayer: [[Int]]

    public init(layerCount: Int) { perLayer = Array(repeating: [], count: layerCount) }

    /// Builds from (layer, neuron) pairs; pairs outside `layerCount`/`intermediateSize` are rejected.
    public init(layerCount: Int, intermediateSize: Int, pairs: [(layer: Int, neuron: Int)]) throws {
        var sets = Array(repeating: Set<Int>(), count: layerCount)
        for (l, j) in pairs {
            guard l >= 0, l < layerCount, j >= 0, j < intermediateSize else {
                throw TransformerError.invalidConfig(source: "neuron set",
                    reason: "neuron [\(l), \(j)] is outside \(layerCount) layers × \(intermediateSize) neurons")
            }
            sets[l].insert(j)
        }
        perLayer = sets.map { $0.sorted() }
    }

    public var layerCount: Int { perLayer.count }
    public var count: Int { perLayer.reduce(0) { $0 + $1.count } }
    public var isEmpty: Bool { count == 0 }

    /// (layer, neuron) pairs sorted by layer, then neuron.
    public var pairs: [(layer: Int, neuron: Int)] {
        perLayer.enumerated().flatMap { l, js in js.map { (layer: l, neuron: $0) } }
    }

    public func union(_ other: NeuronSet) -> NeuronSet {
        precondition(other.layerCount == layerCount, "neuron sets over different layer counts")
        var out = self
        for l in 0..<layerCount { out.perLayer[l] = Array(Set(perLayer[l]).union(other.perLayer[l])).sorted() }
        return out
    }

    public func contains(layer: Int, neuron: Int) -> Bool {
        guard layer >= 0, layer < perLayer.count else { return false }
        return perLayer[layer].binarySearchContains(neuron)
    }
}

extension Array where Element == Int {
    fileprivate func binarySearchContains(_ x: Int) -> Bool {
        var lo = 0, hi = count
        while lo < hi {
            let mid = (lo + hi) / 2
            if self[mid] < x { lo = mid + 1 } else { hi = mid }
        }
        return lo < count && self[lo] == x
    }
}
