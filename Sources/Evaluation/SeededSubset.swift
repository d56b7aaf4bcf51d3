import Foundation
import Tensors

/// Seeded subsets of benchmark documents and prompt sets.
public enum SeededSubset {
    /// `count` of `items` chosen by a seeded partial Fisher–Yates shuffle (SplitMix64), returned in file order,
    /// so the same count and seed always give the same items, and a smaller subset is not a larger one's prefix
    /// by accident. All items when `count` is nil or not smaller than the set.
    public static func pick<T>(_ items: [T], count: Int?, seed: UInt64) -> [T] {
        guard let count, count < items.count else { return items }
        var rng = SplitMix64(seed: seed)
        var idx = Array(items.indices)
        for i in 0..<count { idx.swapAt(i, i + Int(rng.next() % UInt64(idx.count - i))) }
        return idx.prefix(count).sorted().map { items[$0] }
    }
}
