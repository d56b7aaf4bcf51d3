import Foundation
import Runtime
import Transformer
import XCTest
@testable import SafetyNeurons

/// `NeuronIdentifier` on the real default model against the PyTorch forward-hook reference written by
/// scripts/reference/make_identify_reference.py (Fixtures/identify). Skipped when the GGUF is not fetched.
final class IdentificationReferenceTests: XCTestCase {
    struct Reference: Decodable {
        struct Sets: Decodable {
            let es: [[Int]]
            let sas: [[Int]]
            let union: [[Int]]
            let topk: [[Int]]
            let max_abs_d: Double
        }
        let tau_es: Double
        let tau_sas: Double
        let top_k: Int
        let harmful: [String]
        let harmless: [String]
        let token_ids: [String: [Int]]
        let pools: [String: Sets]
    }

    static let dir = Fixtures.dir.appendingPathComponent("identify")
    static let ggufPath = Fixtures.repoRoot.appendingPathComponent("vendor-data/models/SmolLM2-135M-Instruct.Q4_1.gguf").path

    func jaccard(_ a: Set<[Int]>, _ b: Set<[Int]>) -> Double {
        if a.isEmpty && b.isEmpty { return 1 }
        return Double(a.intersection(b).count) / Double(a.union(b).count)
    }

    func pairs(_ s: NeuronSet) -> Set<[Int]> { Set(s.pairs.map { [$0.layer, $0.neuron] }) }

    func testMatchesPyTorchReferenceOnSmolLM2() throws {
        guard FileManager.default.fileExists(atPath: Self.ggufPath) else {
            throw XCTSkip("default model not fetched; run scripts/setup.sh")
        }
        let ref = try JSONDecoder().decode(Reference.self, from: Data(contentsOf: Self.dir.appendingPathComponent("reference.json")))
        let model = try LanguageModel.load(Self.ggufPath)
        // Tokenisation first: a template mismatch would otherwise show up as a vague numeric failure.
        XCTAssertEqual(try model.encodeChat(user: ref.harmful[0]), ref.token_ids["harmful0"])
        XCTAssertEqual(try model.encodeChat(user: ref.harmless[0]), ref.token_ids["harmless0"])
        let c = model.config
        for pool in ActivationPooling.allCases {
            let expected = try XCTUnwrap(ref.pools[pool.rawValue])
            var settings = IdentificationSettings()
            settings.pooling = pool
            settings.tauES = ref.tau_es; settings.tauSAS = ref.tau_sas; settings.topK = ref.top_k
            settings.batchSize = 8
            let r = try NeuronIdentifier.run(model: model, harmful: ref.harmful, harmless: ref.harmless, settings: settings)
            for (name, mine, theirs) in [("es", r.selection.es, expected.es), ("sas", r.selection.sas, expected.sas),
                                         ("union", r.selection.union, expected.union),
                                         ("topk", try XCTUnwrap(r.selection.topK), expected.topk)] {
                let j = jaccard(pairs(mine), Set(theirs))
                XCTAssertGreaterThanOrEqual(j, 0.98, "\(pool) \(name): Jaccard \(j) (ours \(mine.count), reference \(theirs.count))")
                XCTAssertFalse(theirs.isEmpty, "\(pool) \(name): the reference set is empty, the comparison proves nothing")
            }
            // Max pooling's d is ill-conditioned wherever a neuron's maximum lies on the chat template's prefix, which
            // is the same for every prompt: its spread is f32 rounding (zero in PyTorch's one-prompt-at-a-time run,
            // ~1e-7 relative here), so d is 0/0 on one side and noise on the other. Its sets are checked above.
            if pool == .max { continue }
            let raw = try Data(contentsOf: Self.dir.appendingPathComponent("d_\(pool.rawValue).f32"))
            XCTAssertEqual(raw.count, c.numHiddenLayers * c.intermediateSize * 4)
            let refD: [Float] = raw.withUnsafeBytes { Array($0.bindMemory(to: Float.self)) }
            var worst = 0.0, worstAt = -1, nanMismatch = 0
            for i in 0..<min(refD.count, r.scores.d.count) {
                let a = r.scores.d[i], b = Double(refD[i])
                if a.isFinite != b.isFinite { nanMismatch += 1; continue }
                if a.isFinite, abs(a - b) > worst { worst = abs(a - b); worstAt = i }
            }
            XCTAssertEqual(nanMismatch, 0, "\(pool): neurons whose d is NaN on one side only")
            // Same Q4_1 weights on both sides, only f32 summation order differs: measured max |Δd| ≈ 1e-5.
            XCTAssertLessThan(worst, 1e-3, "\(pool): max |Δd| \(worst) at flat index \(worstAt)")
            XCTAssertEqual(r.scores.d.compactMap { $0.isFinite ? abs($0) : nil }.max() ?? 0, expected.max_abs_d, accuracy: 1e-3)
            print("identify reference \(pool): max |Δd| \(worst); es \(r.selection.es.count), sas \(r.selection.sas.count), union \(r.selection.union.count)")
        }
    }
}
