import Foundation
import Transformer
import XCTest
@testable import SafetyNeurons

/// Ranking by attribution with the utility set difference, the neurons-file fields it records, and max pooling.
final class AttributionSelectionTests: XCTestCase {
    // 2 layers × 4 neurons, flat index = layer·4 + neuron.
    let safety: [Double] = [0.5, 3.0, -1.0, 2.0, /* layer 1 */ 3.0, .nan, 0.1, 1.5]
    let utility: [Double] = [0.0, 9.0, 0.0, 0.1, /* layer 1 */ 0.2, 0.0, 0.0, 5.0]

    var scores: AttributionScores {
        AttributionScores(layers: 2, intermediateSize: 4, safety: safety, safetyPairs: 3, utility: utility, utilityPairs: 5)
    }

    func testTopKTiesAndNaN() throws {
        // 3.0 at [0,1] and [1,0] tie: the lower flat index first; NaN never enters.
        XCTAssertEqual(try scores.topK(1).pairs.map { [$0.layer, $0.neuron] }, [[0, 1]])
        XCTAssertEqual(Set(try scores.topK(3).pairs.map { [$0.layer, $0.neuron] }), [[0, 1], [1, 0], [0, 3]])
        XCTAssertEqual(try scores.topK(100).count, 7)
    }

    func testUtilitySetDifference() throws {
        // The two largest utility neurons ([0,1] = 9, [1,3] = 5) are dropped before ranking by safety.
        let set = try scores.topK(3, excludeUtility: 2)
        XCTAssertEqual(Set(set.pairs.map { [$0.layer, $0.neuron] }), [[1, 0], [0, 3], [0, 0]])
        var noUtility = scores
        noUtility.utility = nil
        XCTAssertThrowsError(try noUtility.topK(3, excludeUtility: 1))
        XCTAssertEqual(try noUtility.topK(3, excludeUtility: 0).count, 3)
        XCTAssertThrowsError(try scores.topK(-1))
    }

    func testNeuronsFileRecordsTheScore() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("attr-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let stats = ActivationStatistics(layers: 2, intermediateSize: 4)
        for (g, base) in [(PromptGroup.harmful, Float(1)), (.harmless, 0)] {
            for p in 0..<3 { stats.add(pooled: (0..<4).map { base + Float(p * $0) * 0.1 }, layer: 0, group: g)
                             stats.add(pooled: (0..<4).map { base * Float($0) + Float(p) }, layer: 1, group: g) }
        }
        let sc = try stats.scores()
        var result = IdentificationResult(statistics: stats, scores: sc, selection: try sc.select(tauES: 2, tauSAS: 2, topK: 2),
                                          file: NeuronsFile(model: "m", pool: .max, tauES: 2, tauSAS: 2, scores: sc,
                                                            selection: try sc.select(tauES: 2, tauSAS: 2, topK: 2)),
                                          seconds: 1, promptsPerSecond: 1)
        try result.rankTopK(byAttribution: scores, k: 2, excludeUtility: 1)
        let url = dir.appendingPathComponent("neurons.json")
        try result.file.write(to: url)
        let back = try NeuronsFile.read(from: url)
        XCTAssertEqual(back, result.file)
        XCTAssertEqual(back.score, "attribution")
        XCTAssertEqual(back.excludeUtility, 1)
        XCTAssertEqual(back.safetyPairs, 3)
        XCTAssertEqual(back.utilityPairs, 5)
        XCTAssertEqual(back.pooling, .max)
        XCTAssertEqual(Set(try back.set(named: "topk").pairs.map { [$0.layer, $0.neuron] }), [[1, 0], [0, 3]])

        // A file with an unknown score name or a negative count is refused with the field named.
        let text = try String(contentsOf: url, encoding: .utf8)
        for (from, to, field) in [("\"score\": \"attribution\"", "\"score\": \"magic\"", "score"),
                                  ("\"exclude_utility\": 1", "\"exclude_utility\": -1", "exclude_utility")] {
            XCTAssertThrowsError(try NeuronsFile.decode(Data(text.replacingOccurrences(of: from, with: to).utf8), source: "x.json")) {
                XCTAssertTrue("\($0)".contains(field), "\($0)")
            }
        }
    }

    func testMaxPooling() {
        let rows = 3, cols = 600   // wider than one accumulator block
        let x = (0..<rows * cols).map { Float(($0 * 37) % 101) - 50 }
        var out = [Float](repeating: .nan, count: cols)
        x.withUnsafeBufferPointer { src in
            out.withUnsafeMutableBufferPointer { poolActivations(src, rows: rows, columns: cols, mode: .max, into: $0) }
        }
        for j in 0..<cols { XCTAssertEqual(out[j], max(x[j], x[cols + j], x[2 * cols + j])) }
        // One row: max is that row.
        x.withUnsafeBufferPointer { src in
            out.withUnsafeMutableBufferPointer { poolActivations(src, rows: 1, columns: cols, mode: .max, into: $0) }
        }
        XCTAssertEqual(out, Array(x.prefix(cols)))
    }
}
