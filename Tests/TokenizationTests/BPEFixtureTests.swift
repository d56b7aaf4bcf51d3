import Foundation
import XCTest
@testable import Tokenization

let fixtureDir = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures")

struct ExpectedRow {
    let text: String
    let ids: [Int]
    let idsNoSpecial: [Int]
    let decoded: String
    let decodedSkip: String
}

func loadExpected(_ name: String) throws -> (vocabSize: Int, rows: [ExpectedRow]) {
    let data = try Data(contentsOf: fixtureDir.appendingPathComponent(name))
    let obj = try XCTUnwrap(try JSONSerialization.jsonObject(with: data) as? [String: Any])
    let rows = try XCTUnwrap(obj["rows"] as? [[String: Any]]).map { r in
        ExpectedRow(text: r["text"] as! String, ids: r["ids"] as! [Int], idsNoSpecial: r["ids_no_special"] as! [Int],
                    decoded: r["decoded"] as! String, decodedSkip: r["decoded_skip"] as! String)
    }
    return (obj["vocab_size"] as! Int, rows)
}

func loadGGUFMeta(_ name: String) throws -> GGUFTokenizerMetadata {
    let url = name.hasPrefix("/") ? URL(fileURLWithPath: name) : fixtureDir.appendingPathComponent(name)
    let data = try Data(contentsOf: url)
    let o = try XCTUnwrap(try JSONSerialization.jsonObject(with: data) as? [String: Any])
    return GGUFTokenizerMetadata(
        model: o["model"] as! String, pre: o["pre"] as? String, tokens: o["tokens"] as! [String],
        tokenTypes: o["token_type"] as? [Int], merges: o["merges"] as? [String],
        scores: (o["scores"] as? [Double])?.map { Float($0) },
        bosTokenId: o["bos_token_id"] as? Int, eosTokenId: o["eos_token_id"] as? Int,
        unknownTokenId: o["unknown_token_id"] as? Int, paddingTokenId: o["padding_token_id"] as? Int,
        addBOS: o["add_bos_token"] as? Bool, addEOS: o["add_eos_token"] as? Bool,
        addSpacePrefix: o["add_space_prefix"] as? Bool)
}

func check(_ tok: Tokenizer, _ expected: (vocabSize: Int, rows: [ExpectedRow]), _ label: String,
           file: StaticString = #filePath, line: UInt = #line) {
    XCTAssertEqual(tok.vocabSize, expected.vocabSize, "\(label) vocab size", file: file, line: line)
    for row in expected.rows {
        XCTAssertEqual(tok.encode(row.text, addSpecialTokens: true), row.ids, "\(label) ids for \(row.text.debugDescription)", file: file, line: line)
        XCTAssertEqual(tok.encode(row.text, addSpecialTokens: false), row.idsNoSpecial, "\(label) ids (no special) for \(row.text.debugDescription)", file: file, line: line)
        XCTAssertEqual(tok.decode(row.ids), row.decoded, "\(label) decode of \(row.text.debugDescription)", file: file, line: line)
        XCTAssertEqual(tok.decode(row.ids, skipSpecialTokens: true), row.decodedSkip, "\(label) decode(skip) of \(row.text.debugDescription)", file: file, line: line)
        // Round trip wherever HF round-trips.
        if tok.decode(row.idsNoSpecial) == row.text || row.decodedSkip == row.text {
            XCTAssertEqual(tok.decode(tok.encode(row.text, addSpecialTokens: false)), row.text, "\(label) round trip", file: file, line: line)
        }
    }
}

final class BPEFixtureTests: XCTestCase {
    static let jsonStyles = ["gpt2", "llama3", "qwen2", "gpt2split", "smollm", "llama2", "mistral"]
    static let ggufStyles = ["smollm", "llamabpe", "qwen2", "gpt2", "llama", "llama_nomerges"]

    func testTokenizerJSONFixtures() throws {
        for style in Self.jsonStyles {
            let data = try Data(contentsOf: fixtureDir.appendingPathComponent("json_\(style).tokenizer.json"))
            let tok = try Tokenizer.fromTokenizerJSON(data, config: nil, source: "json_\(style)")
            check(tok, try loadExpected("json_\(style).expected.json"), "json_\(style)")
        }
    }

    func testGGUFFixtures() throws {
        for style in Self.ggufStyles {
            let tok = try Tokenizer.fromGGUF(try loadGGUFMeta("gguf_\(style).meta.json"), source: "gguf_\(style)")
            check(tok, try loadExpected("gguf_\(style).expected.json"), "gguf_\(style)")
        }
    }

    /// The exported tokenizer.json must reload into a tokenizer giving the same ids.
    func testExportRoundTrip() throws {
        for style in Self.ggufStyles {
            let tok = try Tokenizer.fromGGUF(try loadGGUFMeta("gguf_\(style).meta.json"), source: "gguf_\(style)")
            let back = try Tokenizer.fromTokenizerJSON(try tok.tokenizerJSON(), config: tok.tokenizerConfigJSON(chatTemplate: nil), source: "export_\(style)")
            check(back, try loadExpected("gguf_\(style).expected.json"), "export_\(style)")
            XCTAssertEqual(back.bosToken, tok.bosToken)
            XCTAssertEqual(back.eosToken, tok.eosToken)
            XCTAssertEqual(back.specialTokenIds, tok.specialTokenIds)
        }
        for style in Self.jsonStyles {
            let data = try Data(contentsOf: fixtureDir.appendingPathComponent("json_\(style).tokenizer.json"))
            let tok = try Tokenizer.fromTokenizerJSON(data, config: nil, source: "json_\(style)")
            let back = try Tokenizer.fromTokenizerJSON(try tok.tokenizerJSON(), config: nil, source: "export_\(style)")
            check(back, try loadExpected("json_\(style).expected.json"), "export_json_\(style)")
        }
    }
}
