import Foundation
import XCTest
@testable import Tokenization

final class BPEHostileInputTests: XCTestCase {
    private func expectError(_ json: String, contains needle: String, file: StaticString = #filePath, line: UInt = #line) {
        do {
            _ = try Tokenizer.fromTokenizerJSON(Data(json.utf8), config: nil, source: "hostile.json")
            XCTFail("expected an error for \(json.prefix(80))", file: file, line: line)
        } catch let e as TokenizerError {
            XCTAssertTrue(e.description.contains("hostile.json"), "error names the source: \(e)", file: file, line: line)
            XCTAssertTrue(e.description.contains(needle), "\(e) should mention \(needle)", file: file, line: line)
        } catch {
            XCTFail("untyped error \(error)", file: file, line: line)
        }
    }

    private let base = #"{"model":{"type":"BPE","vocab":{"a":0,"b":1,"ab":2},"merges":["a b"]}}"#

    func testValidMinimalTokenizerWorks() throws {
        let t = try Tokenizer.fromTokenizerJSON(Data(base.utf8), config: nil, source: "ok.json")
        XCTAssertEqual(t.encode("abba"), [2, 1, 0])
        XCTAssertEqual(t.vocabSize, 3)
    }

    func testTruncatedJSON() throws {
        let fixture = try Data(contentsOf: fixtureDir.appendingPathComponent("json_gpt2.tokenizer.json"))
        for cut in [1, 100, fixture.count / 2, fixture.count - 3] {
            XCTAssertThrowsError(try Tokenizer.fromTokenizerJSON(fixture.prefix(cut), config: nil, source: "cut.json")) { e in
                XCTAssertTrue(e is TokenizerError)
            }
        }
        expectError("", contains: "invalid tokenizer JSON")
        expectError("[1,2]", contains: "not an object")
    }

    func testMergeWithMissingToken() {
        expectError(#"{"model":{"type":"BPE","vocab":{"a":0,"b":1,"ab":2},"merges":["a c"]}}"#, contains: "\"c\" is not in the vocabulary")
        expectError(#"{"model":{"type":"BPE","vocab":{"a":0,"b":1},"merges":["a b"]}}"#, contains: "merged token")
        expectError(#"{"model":{"type":"BPE","vocab":{"a":0,"b":1,"ab":2},"merges":["a b c"]}}"#, contains: "merge #0")
        expectError(#"{"model":{"type":"BPE","vocab":{"a":0,"b":1,"ab":2},"merges":[["a"]]}}"#, contains: "merge #0")
    }

    func testIdsOutOfRange() {
        expectError(#"{"model":{"type":"BPE","vocab":{"a":0,"b":-1},"merges":[]}}"#, contains: "out of range")
        expectError(#"{"model":{"type":"BPE","vocab":{"a":0,"b":99999999999},"merges":[]}}"#, contains: "out of range")
        expectError(#"{"model":{"type":"BPE","vocab":{"a":0,"b":0},"merges":[]}}"#, contains: "used twice")
        expectError(#"{"model":{"type":"BPE","vocab":{"a":0}},"added_tokens":[{"id":1e12,"content":"x"}]}"#, contains: "out of range")
        expectError(#"{"model":{"type":"BPE","vocab":{"a":0}},"post_processor":{"type":"TemplateProcessing","single":[{"SpecialToken":{"id":"<s>","type_id":0}},{"Sequence":{"id":"A","type_id":0}}],"special_tokens":{"<s>":{"id":"<s>","ids":[7],"tokens":["<s>"]}}}}"#, contains: "post-processor token")
    }

    func testUnsupportedComponentsAreNamed() {
        expectError(#"{"model":{"type":"Unigram","vocab":[]}}"#, contains: "Unigram")
        expectError(#"{"model":{"type":"BPE","vocab":{"a":0}},"pre_tokenizer":{"type":"Split","pattern":{"Regex":"\\w+"},"behavior":"Isolated"}}"#, contains: "\\\\w+")
        expectError(#"{"model":{"type":"BPE","vocab":{"a":0}},"pre_tokenizer":{"type":"Magic"}}"#, contains: "Magic")
        expectError(#"{"model":{"type":"BPE","vocab":{"a":0},"unk_token":"<unk>"}}"#, contains: "unk token")
    }

    func testGGUFValidation() {
        func err(_ m: GGUFTokenizerMetadata) -> String {
            do { _ = try Tokenizer.fromGGUF(m, source: "bad.gguf"); return "" } catch { return "\(error)" }
        }
        XCTAssertTrue(err(GGUFTokenizerMetadata(model: "gpt2", tokens: ["a", "b"], tokenTypes: [1])).contains("token_type count 1 does not match 2"))
        XCTAssertTrue(err(GGUFTokenizerMetadata(model: "gpt2", tokens: ["a", "b"], bosTokenId: 5)).contains("bos_token_id id 5 out of range"))
        XCTAssertTrue(err(GGUFTokenizerMetadata(model: "gpt2", tokens: ["a", "b"], merges: ["a c"])).contains("not in the vocabulary"))
        XCTAssertTrue(err(GGUFTokenizerMetadata(model: "bert", tokens: ["a"])).contains("bert"))
        XCTAssertTrue(err(GGUFTokenizerMetadata(model: "gpt2", pre: "tekken", tokens: ["a"])).contains("tekken"))
        XCTAssertTrue(err(GGUFTokenizerMetadata(model: "llama", tokens: ["a", "b"], scores: [0])).contains("scores"))
        XCTAssertTrue(err(GGUFTokenizerMetadata(model: "gpt2", tokens: [])).contains("bad.gguf"))
    }

    func testDecodeIgnoresUnknownIds() throws {
        let t = try Tokenizer.fromTokenizerJSON(Data(base.utf8), config: nil, source: "ok.json")
        XCTAssertEqual(t.decode([2, -5, 99, 0]), "ab a")
        XCTAssertNil(t.token(of: 3))
        XCTAssertEqual(t.id(of: "ab"), 2)
    }
}

final class BPERealModelTests: XCTestCase {
    /// SMOLLM2_TOKENIZER_META points at the real SmolLM2 GGUF's tokenizer metadata dumped as JSON
    /// (see scripts/reference/make_tokenizer_fixtures.py); checks ids against smollm2_token_ids.json.
    func testSmolLM2AgainstTransformers() throws {
        guard let path = ProcessInfo.processInfo.environment["SMOLLM2_TOKENIZER_META"],
              FileManager.default.fileExists(atPath: path) else { throw XCTSkip("SMOLLM2_TOKENIZER_META not set") }
        let meta = try loadGGUFMeta(URL(fileURLWithPath: path).path)
        let tok = try Tokenizer.fromGGUF(meta, source: path)
        XCTAssertEqual(tok.encode("Hello world 12345  héllo 你好 🙂\n\n  x"),
                       [19556, 905, 216, 33, 34, 35, 36, 37, 216, 294, 2756, 31394, 216, 18645, 250, 48392, 138, 47526, 8866, 1792])
        let ref = fixtureDir.deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("RuntimeTests/Fixtures/smollm2_token_ids.json")
        let obj = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(contentsOf: ref)) as? [String: Any])
        for row in try XCTUnwrap(obj["rows"] as? [[String: Any]]) {
            let text = row["text"] as! String
            XCTAssertEqual(tok.encode(text), row["ids"] as! [Int], text)
            XCTAssertEqual(tok.encode(row["chat_text"] as! String), row["chat_ids"] as! [Int], text)
            XCTAssertEqual(tok.decode(row["ids"] as! [Int]), row["decoded"] as! String)
        }
        XCTAssertEqual(tok.bosTokenId, 1)
        XCTAssertEqual(tok.eosTokenId, 2)
        XCTAssertEqual(tok.vocabSize, 49152)
    }
}

final class BPEPerformanceTests: XCTestCase {
    func testThousandPromptsEncodeQuickly() throws {
        let data = try Data(contentsOf: fixtureDir.appendingPathComponent("json_llama3.tokenizer.json"))
        let tok = try Tokenizer.fromTokenizerJSON(data, config: nil, source: "json_llama3")
        let rows = try loadExpected("json_llama3.expected.json").rows
        let prompts = (0..<1000).map { i in rows[i % rows.count].text + " prompt number \(i) about safety neurons" }
        let start = Date()
        var total = 0
        for p in prompts { total += tok.encode(p).count }
        let elapsed = Date().timeIntervalSince(start)
        XCTAssertGreaterThan(total, 1000)
        // Debug builds are several times slower than release; the bound still catches quadratic behaviour.
        XCTAssertLessThan(elapsed, 5.0, "1000 prompts took \(elapsed)s")
        print("encoded 1000 prompts (\(total) ids) in \(elapsed)s")
    }
}
