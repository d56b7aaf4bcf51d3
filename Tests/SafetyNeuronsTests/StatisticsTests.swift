import Dispatch
import Foundation
import Transformer
import XCTest
@testable import SafetyNeurons

final class StatisticsTests: XCTestCase {
    var c: NeuronCase!
    var harmful: [Float] = []
    var harmless: [Float] = []

    override func setUpWithError() throws {
        c = try Fixtures.loadCase()
        (harmful, harmless) = try Fixtures.activations(c)
    }

    var width: Int { c.intermediate_size }

    /// One pooled vector (prompt p of `group`, layer l).
    func vector(_ group: PromptGroup, _ p: Int, _ l: Int) -> ArraySlice<Float> {
        let src = group == .harmful ? harmful : harmless
        let o = (p * c.layers + l) * width
        return src[o..<o + width]
    }

    func add(_ s: ActivationStatistics, _ group: PromptGroup, _ p: Int, _ l: Int) {
        vector(group, p, l).withUnsafeBufferPointer { s.add(pooled: $0, layer: l, group: group) }
    }

    func batch() -> ActivationStatistics {
        let s = ActivationStatistics(layers: c.layers, intermediateSize: width)
        for p in 0..<c.harmful { for l in 0..<c.layers { add(s, .harmful, p, l) } }
        for p in 0..<c.harmless { for l in 0..<c.layers { add(s, .harmless, p, l) } }
        return s
    }

    func set(_ pairs: [[Int]]) throws -> NeuronSet {
        try NeuronSet(layerCount: c.layers, intermediateSize: width, pairs: pairs.map { ($0[0], $0[1]) })
    }

    /// `exactTies`: the tied pair saw identical add orders, so its d values are bit-identical and the
    /// top-k tie-break must match the reference exactly.
    func checkAgainstReference(_ s: ActivationStatistics, exactTies: Bool = true,
                               file: StaticString = #filePath, line: UInt = #line) throws {
        let sc = try s.scores()
        XCTAssertEqual(sc.harmfulCount, c.harmful, file: file, line: line)
        XCTAssertEqual(sc.harmlessCount, c.harmless, file: file, line: line)
        assertClose(sc.meanHarmful, c.mean_harmful, "mean_harmful", file: file, line: line)
        assertClose(sc.meanHarmless, c.mean_harmless, "mean_harmless", file: file, line: line)
        var vh: [Double] = [], vs: [Double] = []
        for l in 0..<c.layers {
            for j in 0..<width {
                vh.append(s.variance(layer: l, neuron: j, group: .harmful))
                vs.append(s.variance(layer: l, neuron: j, group: .harmless))
            }
        }
        assertClose(vh, c.var_harmful, "var_harmful", file: file, line: line)
        assertClose(vs, c.var_harmless, "var_harmless", file: file, line: line)
        assertClose(sc.stdHarmful, c.var_harmful.map { $0.squareRoot() }, "std_harmful", file: file, line: line)
        assertClose(sc.d, c.d, "d", file: file, line: line)
        assertClose(sc.delta, c.delta, "delta", file: file, line: line)
        assertClose(sc.z, c.z, "z", file: file, line: line)

        let sel = try sc.select(tauES: c.tau_es, tauSAS: c.tau_sas, topK: c.top_k)
        XCTAssertEqual(sel.es, try set(c.es), "ES set", file: file, line: line)
        XCTAssertEqual(sel.sas, try set(c.sas), "SAS set", file: file, line: line)
        XCTAssertEqual(sel.union, try set(c.union), "union set", file: file, line: line)
        if exactTies {
            XCTAssertEqual(sel.topK, try set(c.topk), "top-k set", file: file, line: line)
        } else {
            // Different summation orders make the tied d values differ in the last bits: exactly one of
            // the pair is in, the rest of the set is as in the reference.
            let got = sel.topK?.pairs.map { [$0.layer, $0.neuron] } ?? []
            XCTAssertEqual(got.count, c.top_k, file: file, line: line)
            XCTAssertEqual(got.filter { $0 != [3, 2] && $0 != [2, 30] }, c.topk.filter { $0 != [2, 30] },
                           file: file, line: line)
        }
    }

    func testFixtureHasThePlantedEdgeCases() throws {
        // Guards the fixture itself: if regeneration lost an edge case, the tests below would prove less.
        let i = { (l: Int, j: Int) in l * self.width + j }
        XCTAssertTrue(c.d[i(2, 0)].isNaN && c.d[i(2, 1)].isNaN, "zero-variance neurons")
        XCTAssertTrue(c.sas.contains([2, 1]), "zero-variance neuron with high z is in SAS")
        XCTAssertLessThan(c.z[i(1, 5)], -c.tau_sas, "negative shift with large |z|")
        XCTAssertFalse(c.sas.contains([1, 5]))
        XCTAssertTrue((0..<width).allSatisfy { c.z[i(4, $0)].isNaN }, "flat layer")
        XCTAssertEqual(c.d[i(2, 30)], c.d[i(3, 2)], "tie")
        XCTAssertTrue(c.topk.contains([2, 30]) && !c.topk.contains([3, 2]), "tie straddles the top-k boundary")
    }

    func testBatchMatchesReference() throws {
        try checkAgainstReference(batch())
    }

    func testPromptShuffledStreamingAndMergeMatchReference() throws {
        // The tap's natural order: prompts in random order (groups interleaved), all layers of a
        // prompt in a random layer order, shards split by prompt and merged.
        var prompts: [(PromptGroup, Int)] = (0..<c.harmful).map { (.harmful, $0) } + (0..<c.harmless).map { (.harmless, $0) }
        var rng = SplitMix64(state: 7)
        prompts.shuffle(using: &rng)
        let parts = (0..<4).map { _ in ActivationStatistics(layers: c.layers, intermediateSize: width) }
        for (n, (g, p)) in prompts.enumerated() {
            for l in (0..<c.layers).shuffled(using: &rng) { add(parts[n % 4 == 3 ? 3 : n % 2], g, p, l) }
        }
        try parts[0].merge(parts[1]); try parts[2].merge(parts[3]); try parts[0].merge(parts[2])
        try checkAgainstReference(parts[0])
    }

    func testShuffledStreamingAndMergeMatchReference() throws {
        var items: [(PromptGroup, Int, Int)] = []
        for p in 0..<c.harmful { for l in 0..<c.layers { items.append((.harmful, p, l)) } }
        for p in 0..<c.harmless { for l in 0..<c.layers { items.append((.harmless, p, l)) } }
        var rng = SplitMix64(state: 42)
        items.shuffle(using: &rng)
        // Three shards of unequal size, one of them lacking a group entirely for some layers at first.
        let parts = (0..<3).map { _ in ActivationStatistics(layers: c.layers, intermediateSize: width) }
        for (n, it) in items.enumerated() {
            let shard = n < items.count / 7 ? 0 : (n % 3 == 0 ? 1 : 2)
            add(parts[shard], it.0, it.1, it.2)
        }
        try parts[0].merge(parts[1])
        try parts[0].merge(parts[2])
        try checkAgainstReference(parts[0], exactTies: false)

        // Merging into an empty accumulator and merging an empty one are identities.
        let empty = ActivationStatistics(layers: c.layers, intermediateSize: width)
        try empty.merge(parts[0])
        try empty.merge(ActivationStatistics(layers: c.layers, intermediateSize: width))
        try checkAgainstReference(empty, exactTies: false)

        let b = try batch().scores(), m = try parts[0].scores()
        assertClose(m.d, b.d, rel: 1e-12, "merged vs batch d")
    }

    func testConcurrentAddsToDifferentLayers() throws {
        let s = ActivationStatistics(layers: c.layers, intermediateSize: width)
        DispatchQueue.concurrentPerform(iterations: c.layers) { l in
            for p in 0..<c.harmful { add(s, .harmful, p, l) }
            for p in 0..<c.harmless { add(s, .harmless, p, l) }
        }
        try checkAgainstReference(s)
    }

    func testMergeRejectsShapeMismatch() {
        let a = ActivationStatistics(layers: 2, intermediateSize: 4)
        XCTAssertThrowsError(try a.merge(ActivationStatistics(layers: 2, intermediateSize: 5)))
    }

    func testScoresRequireCompleteCounts() throws {
        let s = ActivationStatistics(layers: 2, intermediateSize: 3)
        for _ in 0..<3 { for l in 0..<2 { s.add(pooled: [1, 2, 3], layer: l, group: .harmful) } }
        s.add(pooled: [1, 2, 3], layer: 0, group: .harmless)
        XCTAssertThrowsError(try s.scores()) { e in
            XCTAssertEqual(e as? SafetyNeuronsError, .insufficientSamples(layer: 0, group: "harmless", count: 1))
        }
        s.add(pooled: [1, 2, 4], layer: 0, group: .harmless)
        for _ in 0..<3 { s.add(pooled: [1, 2, 4], layer: 1, group: .harmless) }
        XCTAssertThrowsError(try s.scores()) { e in
            XCTAssertEqual(e as? SafetyNeuronsError, .inconsistentCounts(group: "harmless", layer: 1, count: 3, expected: 2))
        }
    }

    func testSelectionArgumentsAndEmptyTopK() throws {
        let sc = try batch().scores()
        XCTAssertThrowsError(try sc.select(tauES: .nan, tauSAS: 2))
        XCTAssertThrowsError(try sc.select(tauES: 2, tauSAS: 2, topK: -1))
        let none = try sc.select(tauES: 1e9, tauSAS: 1e9, topK: 0)
        XCTAssertTrue(none.es.isEmpty && none.sas.isEmpty && none.union.isEmpty)
        XCTAssertEqual(none.topK?.count, 0)
        XCTAssertNil(try sc.select(tauES: 2, tauSAS: 2).topK)
        // K beyond the number of finite d values takes them all, never a NaN one.
        let finite = sc.d.filter(\.isFinite).count
        XCTAssertEqual(try sc.select(tauES: 2, tauSAS: 2, topK: 10_000).topK?.count, finite)
    }

    func testPoolingMatchesReference() throws {
        let raw = try Fixtures.floats("pooling.f32")
        var offset = 0
        var out = [Float](repeating: .nan, count: width)
        for (k, rows) in c.pool_rows.enumerated() {
            let seq = Array(raw[offset..<offset + rows * width])
            offset += rows * width
            for (mode, want) in [(ActivationPooling.mean, c.pool_mean[k]), (.last, c.pool_last[k])] {
                seq.withUnsafeBufferPointer { src in
                    out.withUnsafeMutableBufferPointer {
                        poolActivations(src, rows: rows, columns: width, mode: mode, into: $0)
                    }
                }
                for j in 0..<width {
                    XCTAssertEqual(out[j], Float(want[j]), accuracy: 1e-6 * max(1, abs(Float(want[j]))),
                                   "\(mode) rows=\(rows) j=\(j)")
                }
                // Adding raw activations equals pooling in Double, then adding.
                let direct = ActivationStatistics(layers: 1, intermediateSize: width)
                seq.withUnsafeBufferPointer {
                    direct.add(activations: $0, rows: rows, pooling: mode, layer: 0, group: .harmful)
                }
                for j in 0..<width {
                    XCTAssertEqual(direct.mean(layer: 0, neuron: j, group: .harmful), want[j],
                                   accuracy: 1e-12 * max(1, abs(want[j])))
                }
            }
        }
        XCTAssertEqual(offset, raw.count)
    }

    func testPoolingWideRowsCrossBlocks() {
        // Wider than one accumulator block, so the block walk must cover every column exactly once.
        let rows = 3, cols = 600
        let x = (0..<rows * cols).map { Float($0 % 97) - 40 }
        var out = [Float](repeating: .nan, count: cols)
        x.withUnsafeBufferPointer { src in
            out.withUnsafeMutableBufferPointer { poolActivations(src, rows: rows, columns: cols, mode: .mean, into: $0) }
        }
        for j in 0..<cols {
            let want = (x[j] + x[cols + j] + x[2 * cols + j]) / 3
            XCTAssertEqual(out[j], want, accuracy: 1e-5)
        }
    }
}
