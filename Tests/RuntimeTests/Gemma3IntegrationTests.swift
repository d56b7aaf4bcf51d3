import Foundation
import XCTest
import Runtime
import Tokenization
@testable import Transformer

/// The real google/gemma-3-270m GGUF (`scripts/setup.sh --with gemma3`; the test set-up fetches it) against
/// numbers transformers computed in f32 from the same file (scripts/reference/make_gemma3_reference.py), on texts
/// written for these checks only. The architecture's own numerics are covered by the tiny fixtures of
/// TransformerTests; this is the whole chain: GGUF metadata, quantised tensors, norm shift, the 262k SentencePiece
/// vocabulary and batched cached generation past the sliding window.
final class Gemma3IntegrationTests: XCTestCase {
    static let repo = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    static let ggufPath = repo.appendingPathComponent("vendor-data/models/gemma-3-270m-q4_k_m.gguf").path
    static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures")

    nonisolated(unsafe) static var cached: LanguageModel?

    func model() throws -> LanguageModel {
        guard FileManager.default.fileExists(atPath: Self.ggufPath) else {
            throw XCTSkip("gemma-3-270m not fetched; run scripts/setup.sh --with gemma3")
        }
        if let m = Self.cached { return m }
        let m = try LanguageModel.load(Self.ggufPath)
        Self.cached = m
        return m
    }

    func reference(_ key: String) throws -> [[String: Any]] {
        let data = try Data(contentsOf: Self.fixtures.appendingPathComponent("gemma3_reference.json"))
        let root = try XCTUnwrap(JSONSerialization.jsonObject(with: data) as? [String: Any])
        return try XCTUnwrap(root[key] as? [[String: Any]], key)
    }

    func testConfigFromGGUF() throws {
        let c = try model().config
        XCTAssertEqual(c.modelType, "gemma3_text")
        XCTAssertEqual(c.numHiddenLayers, 18)
        XCTAssertEqual(c.hiddenSize, 640)
        XCTAssertEqual(c.headDim, 256)
        XCTAssertEqual(c.numKeyValueHeads, 1)
        XCTAssertEqual(c.vocabSize, 262_144)
        XCTAssertEqual(c.slidingWindow, 512)
        XCTAssertEqual(c.layerTypes.enumerated().filter { $0.element == .full }.map(\.offset), [5, 11, 17])
        XCTAssertEqual(c.rope(layer: 0).theta, 10_000)
        XCTAssertEqual(c.rope(layer: 5).theta, 1_000_000)
        XCTAssertEqual(c.recipe, Gemma3.recipe)
        XCTAssertEqual(c.embeddingScale ?? 0, Double(640).squareRoot())
    }

    func testWeightsEqualTransformersLoadOfTheSameGGUF() throws {
        let m = try model()
        let byName = Dictionary(uniqueKeysWithValues: m.weights.namedParameters.map { ($0.0, $0.1) })
        let entries = try reference("weights")
        XCTAssertEqual(entries.count, byName.count)
        for e in entries {
            let name = try XCTUnwrap(e["name"] as? String)
            let t = try XCTUnwrap(byName[name], name)
            XCTAssertEqual(t.shape, (e["shape"] as? [Int]) ?? [], name)
            for (p, v) in zip((e["positions"] as? [Int]) ?? [], (e["values"] as? [Double]) ?? []) {
                // The same f32 dequantisation: bit-equal. (JSONSerialization's doubles can be off in the last digit, far
                // below half an f32 ulp, so the reference is rounded back to f32 before comparing.)
                XCTAssertEqual(t[p], Float(v), "\(name)[\(p)]")
            }
            var sum = 0.0
            for i in 0..<t.count { sum += Double(t[i]) }
            let refSum = (e["sum"] as? Double) ?? .nan
            XCTAssertEqual(sum, refSum, accuracy: 1e-9 * max(1, abs(refSum)) + 1e-7 * Double(t.count).squareRoot(), name)
        }
    }

    func testTokenIdsMatchTransformers() throws {
        let m = try model()
        for c in try reference("texts") {
            let text = try XCTUnwrap(c["text"] as? String)
            XCTAssertEqual(m.tokenizer.encode(text), c["ids"] as? [Int], text)
        }
    }

    func testLogprobsMatchTransformers() throws {
        let m = try model()
        let cases = try reference("pairs")
        var pairs: [(ids: [Int], start: Int)] = []
        for c in cases {
            let p = try m.encodeCompletionPair(prompt: c["prompt"] as! String, completion: c["completion"] as! String)
            XCTAssertEqual(p.ids, c["full_ids"] as! [Int])
            XCTAssertEqual(p.start, c["start"] as! Int)
            pairs.append(p)
        }
        for (s, c) in zip(try m.logprobs(pairs), cases) {
            XCTAssertEqual(s.logprob, c["logprob"] as! Double, accuracy: 0.02, c["prompt"] as! String)
        }
    }

    /// All prompts decode together with a KV cache; the last is longer than the 512-key window, so the local layers
    /// read only their window of the cache while the global ones read all of it.
    func testBatchedGreedyGenerationMatchesTransformers() throws {
        let m = try model()
        let cases = try reference("greedy")
        let prompts = cases.map { $0["prompt_ids"] as! [Int] }
        XCTAssertGreaterThan(prompts.map(\.count).max() ?? 0, m.config.slidingWindow ?? .max)
        let saved = m.engine.decodeWeights
        defer { m.engine.decodeWeights = saved }
        m.engine.decodeWeights = .f32
        let outs = try m.generate(prompts: prompts, maxNewTokens: 16)
        var agree = 0
        for (o, c) in zip(outs, cases) where Array(o.prefix(16)) == Array((c["new_ids"] as! [Int]).prefix(16)) { agree += 1 }
        XCTAssertGreaterThanOrEqual(agree, 4, "greedy continuations equal on \(agree)/\(cases.count) prompts")
    }
}
