import Foundation
import XCTest
import Runtime
import Tokenization
import Transformer

/// End-to-end parity on the real default model (fetched by scripts/setup.sh) against numbers transformers
/// computed from the same GGUF (scripts/reference/make_smollm2_reference.py).
final class SmolLM2IntegrationTests: XCTestCase {
    static let repo = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    static let ggufPath = repo.appendingPathComponent("vendor-data/models/SmolLM2-135M-Instruct.Q4_1.gguf").path
    static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures")

    nonisolated(unsafe) static var cached: LanguageModel?

    func model() throws -> LanguageModel {
        guard FileManager.default.fileExists(atPath: Self.ggufPath) else {
            throw XCTSkip("default model not fetched; run scripts/setup.sh")
        }
        if let m = Self.cached { return m }
        let m = try LanguageModel.load(Self.ggufPath)
        Self.cached = m
        return m
    }

    func reference() throws -> [String: Any] {
        let data = try Data(contentsOf: Self.fixtures.appendingPathComponent("smollm2_reference.json"))
        return try XCTUnwrap(JSONSerialization.jsonObject(with: data) as? [String: Any])
    }

    func testConfigFromGGUF() throws {
        let c = try model().config
        XCTAssertEqual(c.numHiddenLayers, 30)
        XCTAssertEqual(c.hiddenSize, 576)
        XCTAssertEqual(c.intermediateSize, 1536)
        XCTAssertEqual(c.numAttentionHeads, 9)
        XCTAssertEqual(c.numKeyValueHeads, 3)
        XCTAssertEqual(c.vocabSize, 49152)
        XCTAssertTrue(c.tieWordEmbeddings)
        XCTAssertEqual(c.ropeTheta, 100000)
    }

    func testWeightsEqualTransformersLoadOfTheSameGGUF() throws {
        let m = try model()
        let byName = Dictionary(uniqueKeysWithValues: m.weights.namedParameters.map { ($0.0, $0.1) })
        let entries = try XCTUnwrap(reference()["weights"] as? [[String: Any]])
        XCTAssertEqual(entries.count, 273)
        for e in entries {
            let name = try XCTUnwrap(e["name"] as? String)
            let t = name == "lm_head.weight" && m.config.tieWordEmbeddings ? m.weights.outputWeight : try XCTUnwrap(byName[name], name)
            XCTAssertEqual(t.shape, (e["shape"] as? [Int]) ?? [], name)
            let positions = (e["positions"] as? [Int]) ?? []
            let values = (e["values"] as? [Double]) ?? []
            for (p, v) in zip(positions, values) {
                XCTAssertEqual(Double(t[p]), v, accuracy: 1e-6 * max(1, abs(v)), "\(name)[\(p)]")
            }
            var sum = 0.0
            for i in 0..<t.count { sum += Double(t[i]) }
            let refSum = (e["sum"] as? Double) ?? .nan
            XCTAssertEqual(sum, refSum, accuracy: 1e-6 * max(1, abs(refSum)) + 1e-6 * Double(t.count).squareRoot(), name)
        }
    }

    func testChatTemplateAndLogprobsMatchTransformers() throws {
        let m = try model()
        let cases = try XCTUnwrap(reference()["logprob"] as? [[String: Any]])
        var pairs: [(ids: [Int], start: Int)] = []
        for c in cases {
            let p = try m.encodeCompletionPair(prompt: c["prompt"] as! String, completion: c["completion"] as! String)
            XCTAssertEqual(Array(p.ids.prefix(p.start)), c["prompt_ids"] as! [Int])
            XCTAssertEqual(p.ids, c["full_ids"] as! [Int])
            pairs.append(p)
        }
        let scores = try m.logprobs(pairs)
        for (s, c) in zip(scores, cases) {
            XCTAssertEqual(s.tokens, c["tokens"] as! Int)
            XCTAssertEqual(s.logprob, c["logprob"] as! Double, accuracy: 0.02, c["prompt"] as! String)
        }
    }

    func testGreedyGenerationMatchesTransformers() throws {
        let m = try model()
        let cases = try XCTUnwrap(reference()["greedy"] as? [[String: Any]])
        let prompts = try cases.map { try m.encodeChat(user: $0["prompt"] as! String) }
        for (p, c) in zip(prompts, cases) { XCTAssertEqual(p, c["prompt_ids"] as! [Int]) }
        let outs = try m.generate(prompts: prompts, maxNewTokens: 16)
        var agree = 0
        for (o, c) in zip(outs, cases) {
            let ref = c["tokens"] as! [Int]
            if Array(o.prefix(16)) == Array(ref.prefix(16)) { agree += 1 }
        }
        XCTAssertGreaterThanOrEqual(agree, 4, "greedy prefixes equal on \(agree)/5 prompts")
    }

    func testConvertWritesAFolderThatLoadsBackIdentically() throws {
        let m = try model()
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("sn-convert-\(getpid())").path
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try m.exportHF(to: dir, dtype: .f32)
        let back = try LanguageModel.load(dir)
        XCTAssertEqual(back.config.numHiddenLayers, m.config.numHiddenLayers)
        XCTAssertEqual(back.config.tieWordEmbeddings, true)
        for ((n1, t1), (n2, t2)) in zip(m.weights.namedParameters, back.weights.namedParameters) {
            XCTAssertEqual(n1, n2)
            XCTAssertTrue(memcmp(t1.pointer, t2.pointer, t1.count * 4) == 0, n1)
        }
        let text = "Hello there! Ünïcödé, 12345, 你好 🙂\n\tcode: x = [1, 2]"
        XCTAssertEqual(back.tokenizer.encode(text, addSpecialTokens: true), m.tokenizer.encode(text, addSpecialTokens: true))
        XCTAssertEqual(try back.encodeChat(user: text), try m.encodeChat(user: text))
    }

    func testTruncatedGGUFIsRejectedWithTheFileNamed() throws {
        _ = try model()
        let data = try Data(contentsOf: URL(fileURLWithPath: Self.ggufPath), options: .alwaysMapped)
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("sn-trunc-\(getpid())")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        for cut in [10, 1000, 100_000, data.count / 2, data.count - 1] {
            let path = dir.appendingPathComponent("cut\(cut).gguf").path
            try data.prefix(cut).write(to: URL(fileURLWithPath: path))
            XCTAssertThrowsError(try LanguageModel.load(path)) { error in
                XCTAssertTrue("\(error)".contains("cut\(cut).gguf"), "\(error)")
            }
        }
    }
}

extension SmolLM2IntegrationTests {
    /// Ids from transformers' tokenizer for the same GGUF (scripts/reference/make_tokenizer_fixtures.py).
    func testTokenIdsAndChatIdsMatchTransformers() throws {
        let m = try model()
        let data = try Data(contentsOf: Self.fixtures.appendingPathComponent("smollm2_token_ids.json"))
        let json = try XCTUnwrap(JSONSerialization.jsonObject(with: data) as? [String: Any])
        let rows = try XCTUnwrap(json["rows"] as? [[String: Any]])
        XCTAssertGreaterThan(rows.count, 30)
        for row in rows {
            let text = row["text"] as! String
            XCTAssertEqual(m.tokenizer.encode(text, addSpecialTokens: true), row["ids"] as! [Int], text)
            XCTAssertEqual(try m.renderChat([ChatMessage(role: "user", content: text)], addGenerationPrompt: true),
                           row["chat_text"] as! String, text)
            XCTAssertEqual(try m.encodeChat(user: text), row["chat_ids"] as! [Int], text)
            XCTAssertEqual(m.tokenizer.decode(row["ids"] as! [Int]), row["decoded"] as! String, text)
        }
    }
}
