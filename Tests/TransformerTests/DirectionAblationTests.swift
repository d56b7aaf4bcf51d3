import XCTest
import Tensors
@testable import Transformer

final class DirectionAblationTests: XCTestCase {
    static let names = ["tied", "llama3", "qwen2", "gemma3", "gemma3_softcap"]

    /// A seeded direction that is not small along any particular axis.
    func randomDirection(_ n: Int, seed: UInt64) -> [Float] {
        var g = SplitMix64(seed: seed)
        return (0..<n).map { _ in Float(g.nextUnit() * 2 - 1) }
    }

    /// The mean difference of the model's own residual stream is a far stronger direction than a random one.
    func meanDirection(_ f: Fixture.Loaded) throws -> [Float] {
        let seqs = f.manifest.sequences
        let H = f.model.config.hiddenSize, L = f.model.config.numHiddenLayers
        let means = ResidualMeans(points: L + 1, positions: 1, hidden: H)
        _ = try f.model.forward(sequences: seqs, logitsFor: .last, residualTap: { point, s, x, rows in
            means.add(point: point, group: s % 2, residual: x, rows: rows)
        })
        let diff = try XCTUnwrap(means.meanDifference())
        let l = L / 2
        return Array(diff[(l * H)..<((l + 1) * H)])
    }

    func testOrthogonalizedWeightsEqualActivationAblation() throws {
        for name in Self.names {
            let ablated = try Fixture.load(name), source = try Fixture.load(name)
            let H = ablated.model.config.hiddenSize
            for (k, r) in [randomDirection(H, seed: 7), try meanDirection(ablated)].enumerated() {
                let seqs = ablated.manifest.sequences
                let intact = try ablated.model.forward(sequences: seqs).flatMap { $0.array }
                try ablated.model.setAblatedDirection(r)
                let viaActivations = try ablated.model.forward(sequences: seqs).flatMap { $0.array }
                try ablated.model.setAblatedDirection(nil)
                XCTAssertEqual(try ablated.model.forward(sequences: seqs).flatMap { $0.array }, intact, "clearing restores the model")

                let fresh = k == 0 ? source : try Fixture.load(name)
                if fresh.model.config.recipe.normPlacement == .sandwich {
                    // Post-sublayer norms write the residual non-linearly: no weight edit is equivalent, so refuse.
                    XCTAssertThrowsError(try DirectionAblation.orthogonalize(fresh.model.weights, direction: r), name)
                    XCTAssertGreaterThan(relativeError(viaActivations, intact), 1e-3, "\(name) direction \(k): the ablation must matter")
                    continue
                }
                let tied = fresh.model.config.tieWordEmbeddings
                let originalEmbedding = fresh.model.weights.embedTokens.array
                let w = try DirectionAblation.orthogonalize(fresh.model.weights, direction: r)
                XCTAssertFalse(w.config.tieWordEmbeddings, name)
                XCTAssertEqual(w.namedParameters.map(\.0).last, "lm_head.weight")
                if tied { XCTAssertEqual(w.lmHead?.array, originalEmbedding, "\(name): the untied head is the original embedding") }
                let viaWeights = try InferenceModel(weights: w).forward(sequences: seqs).flatMap { $0.array }

                let err = relativeError(viaWeights, viaActivations)
                print("\(name) direction \(k): orthogonalised vs ablated logits relative error \(err), ablation moves logits by \(relativeError(viaActivations, intact))")
                XCTAssertLessThan(err, 1e-4, "\(name) direction \(k)")
                XCTAssertGreaterThan(relativeError(viaActivations, intact), 1e-3, "\(name) direction \(k): the ablation must matter")
                // Nothing that writes the residual stream keeps a component along r.
                let u = try DirectionAblation.unit(r, hiddenSize: H, source: "test")
                func maxAlong(_ t: Tensor, rowsAreResidual: Bool) -> Float {
                    var m: Float = 0
                    if rowsAreResidual {
                        for v in 0..<t.shape[0] { m = max(m, abs(Kernels.dot(t.pointer + v * H, u, count: H))) }
                    } else {
                        let cols = t.shape[1]
                        for j in 0..<cols {
                            var d: Float = 0
                            for h in 0..<H { d += u[h] * t.pointer[h * cols + j] }
                            m = max(m, abs(d))
                        }
                    }
                    return m
                }
                XCTAssertLessThan(maxAlong(w.embedTokens, rowsAreResidual: true), 1e-5)
                for layer in w.layers {
                    XCTAssertLessThan(maxAlong(layer.oProj, rowsAreResidual: false), 1e-5)
                    XCTAssertLessThan(maxAlong(layer.downProj, rowsAreResidual: false), 1e-5)
                }
            }
        }
    }

    /// Only projecting at the layer inputs (not between attention and MLP) would not equal the weights' model:
    /// the MLP would still read the attention output's component along r. The test pins that the engine projects there.
    func testAblatedResidualHasNoComponentAlongTheDirection() throws {
        let f = try Fixture.load("llama3")
        let H = f.model.config.hiddenSize, L = f.model.config.numHiddenLayers
        let r = try DirectionAblation.unit(try meanDirection(f), hiddenSize: H, source: "test")
        try f.model.setAblatedDirection(r)
        var seen = Set<Int>()
        var worst: Float = 0
        _ = try f.model.forward(sequences: f.manifest.sequences, residualTap: { point, _, x, rows in
            seen.insert(point)
            for i in 0..<rows { worst = max(worst, abs(Kernels.dot(x.baseAddress! + i * H, r, count: H))) }
        })
        XCTAssertEqual(seen, Set(0...L))
        XCTAssertLessThan(worst, 1e-5)
    }

    func testResidualTapPoints() throws {
        let f = try Fixture.load("tied")
        let c = f.model.config, H = c.hiddenSize, L = c.numHiddenLayers
        let seqs = f.manifest.sequences
        var first: [[Float]] = Array(repeating: [], count: seqs.count), last = first
        var calls = 0
        let logits = try f.model.forward(sequences: seqs, logitsFor: .all, residualTap: { point, s, x, rows in
            calls += 1
            XCTAssertEqual(rows, seqs[s].count)
            if point == 0 { first[s] = Array(x) }
            if point == L { last[s] = Array(x) }
        })
        XCTAssertEqual(calls, (L + 1) * seqs.count)
        for (s, seq) in seqs.enumerated() {
            // Point 0 is the embedding rows.
            for (i, t) in seq.enumerated() {
                XCTAssertEqual(Array(first[s][(i * H)..<((i + 1) * H)]), Array(f.model.weights.embedTokens.array[(t * H)..<((t + 1) * H)]))
            }
            // Point L, final-normed and through the LM head, gives the logits.
            let n = Tensor(shape: [seq.count, H])
            last[s].withUnsafeBufferPointer { Kernels.rmsNorm($0.baseAddress!, rows: seq.count, dim: H, weight: f.model.weights.norm.pointer,
                                                               eps: Float(c.rmsNormEps), into: n.pointer) }
            let out = Tensor(shape: [seq.count, c.vocabSize])
            BLAS.linear(n.pointer, count: seq.count, inFeatures: H, weight: f.model.weights.outputWeight.pointer,
                        outFeatures: c.vocabSize, into: out.pointer)
            XCTAssertLessThan(relativeError(out.array, logits[s].array), 1e-5)
        }
    }

    func testDirectionAblationWithKVCacheMatchesFullForward() throws {
        let f = try Fixture.load("qwen2")
        f.model.decodeWeights = .f32
        let r = try meanDirection(f)
        try f.model.setAblatedDirection(r)
        let seqs = f.manifest.sequences.filter { $0.count >= 2 }
        XCTAssertGreaterThan(seqs.count, 1)
        let full = try f.model.forward(sequences: seqs, logitsFor: .last)
        let session = try DecodeSession(model: f.model, slots: seqs.count, maxLength: seqs.map(\.count).max()!)
        _ = try session.append(seqs.map { Array($0.dropLast()) }, to: Array(seqs.indices))
        let step = try session.append(seqs.map { [$0.last!] }, to: Array(seqs.indices))
        XCTAssertLessThan(relativeError(step.array, full.flatMap { $0.array }), 1e-5)
        // Scoring through the prompt cache would mix intact and ablated states: refused.
        XCTAssertThrowsError(try f.model.completionLogProbs(sequences: seqs, completionStarts: seqs.map { _ in 1 }, prefixes: PrefixCache()))
        try f.model.setAblatedDirection(nil)
        let intact = try f.model.forward(sequences: seqs, logitsFor: .last)
        XCTAssertGreaterThan(relativeError(full.flatMap { $0.array }, intact.flatMap { $0.array }), 1e-3)
    }

    func testDifferenceInMeansOnHandMadeTensors() throws {
        // 2 points × 2 positions × 3 hidden; sequences of 3 and 2 rows: only the last 2 rows of each count.
        let m = ResidualMeans(points: 2, positions: 2, hidden: 3)
        XCTAssertNil(m.meanDifference())
        func add(_ group: Int, _ rows: [[Float]], point: Int) {
            let flat = rows.flatMap { $0 }
            flat.withUnsafeBufferPointer { m.add(point: point, group: group, residual: $0, rows: rows.count) }
        }
        // harmful: two sequences
        add(0, [[100, 100, 100], [1, 2, 3], [4, 5, 6]], point: 0)
        add(0, [[3, 2, 1], [6, 5, 4]], point: 0)
        add(0, [[1, 1, 1], [2, 2, 2]], point: 1)
        XCTAssertNil(m.meanDifference(), "point 1 has fewer harmful sequences than point 0")
        add(0, [[3, 3, 3], [0, 0, 0]], point: 1)
        // harmless: one sequence
        add(1, [[1, 0, 0], [0, 1, 0]], point: 0)
        add(1, [[0, 0, 1], [-1, -1, -1]], point: 1)
        XCTAssertEqual(m.counts, [[2, 2], [1, 1]])
        let d = try XCTUnwrap(m.meanDifference())
        let expected: [Float] = [
            // point 0, position 0: mean([1,2,3],[3,2,1]) − [1,0,0];  position 1: mean([4,5,6],[6,5,4]) − [0,1,0]
            1, 2, 2, 5, 4, 5,
            // point 1, position 0: mean([1,1,1],[3,3,3]) − [0,0,1];  position 1: mean([2,2,2],[0,0,0]) − [−1,−1,−1]
            2, 2, 1, 2, 2, 2,
        ]
        XCTAssertEqual(d, expected)
        XCTAssertEqual(m.mean(group: 1), [1, 0, 0, 0, 1, 0, 0, 0, 1, -1, -1, -1])
    }

    func testUnitDirectionRejectsBadVectors() throws {
        XCTAssertEqual(try DirectionAblation.unit([3, 4], hiddenSize: 2, source: "t"), [0.6, 0.8])
        XCTAssertThrowsError(try DirectionAblation.unit([1, 2, 3], hiddenSize: 2, source: "t"))
        XCTAssertThrowsError(try DirectionAblation.unit([0, 0], hiddenSize: 2, source: "t"))
        XCTAssertThrowsError(try DirectionAblation.unit([.nan, 1], hiddenSize: 2, source: "t"))
        let f = try Fixture.load("tied")
        XCTAssertThrowsError(try f.model.setAblatedDirection([1, 2]))
        XCTAssertNil(f.model.ablatedDirection)
    }
}
