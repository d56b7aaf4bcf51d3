import Foundation
import Runtime
import Tokenization
import XCTest
@testable import Alignment

final class PreferenceFileTests: XCTestCase {
    func write(_ lines: [String]) throws -> String {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("pairs-\(UUID().uuidString.prefix(8)).jsonl")
        try Data((lines.joined(separator: "\n") + "\n").utf8).write(to: url)
        return url.path
    }

    func user(_ s: String) -> ChatMessage { ChatMessage(role: "user", content: s) }
    func assistant(_ s: String) -> ChatMessage { ChatMessage(role: "assistant", content: s) }

    func testEveryFormatReadsToTheSameConversation() throws {
        let expected = PreferenceConversation(prompt: [user("q")], chosen: [assistant("no")], rejected: [assistant("yes")])
        let path = try write([
            #"{"prompt": "q", "chosen": "no", "rejected": "yes"}"#,
            #"{"prompt": [{"role": "user", "content": "q"}], "chosen": [{"role": "assistant", "content": "no"}], "rejected": [{"role": "assistant", "content": "yes"}]}"#,
            #"{"chosen": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "no"}], "rejected": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "yes"}]}"#,
            #"{"prompt": "q", "response_0": "yes", "response_1": "no", "safer_response_id": 1, "better_response_id": 0, "is_response_0_safe": false}"#,
            #"{"prompt": "q", "response_0": "no", "response_1": "yes", "better_response_id": 0}"#,
        ])
        let loaded = try PreferenceFile.load(path)
        XCTAssertEqual(loaded.rows.map(\.format), [.standard, .conversational, .conversational, .pkuSafeRLHF, .pkuSafeRLHF])
        for row in loaded.rows { XCTAssertEqual(row.pair, expected, "line \(row.line)") }
        XCTAssertEqual(loaded.rows.map(\.line), [1, 2, 3, 4, 5])
        XCTAssertEqual(loaded.summary(path: "p"), "read 5 preference pairs from p (1 standard, 2 conversational, 2 pku-saferlhf)")
    }

    func testSystemTurnsEarlierTurnsAndKind() throws {
        let path = try write([
            #"{"prompt": "q", "system": "be careful", "chosen": "no", "rejected": "yes", "kind": "safety"}"#,
            #"{"prompt": [{"role": "system", "content": "s"}, {"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}, {"role": "user", "content": "c"}], "chosen": [{"role": "assistant", "content": [{"type": "text", "text": "d"}]}], "rejected": [{"role": "assistant", "content": "e"}], "kind": "general"}"#,
        ])
        let rows = try PreferenceFile.load(path).rows
        XCTAssertEqual(rows[0].pair.prompt, [ChatMessage(role: "system", content: "be careful"), user("q")])
        XCTAssertEqual(rows[0].pair.kind, "safety")
        XCTAssertEqual(rows[1].pair.prompt.map(\.role), ["system", "user", "assistant", "user"])
        XCTAssertEqual(rows[1].pair.chosen, [assistant("d")])
        XCTAssertEqual(rows[1].pair.kind, "general")
    }

    func testIdenticalAnswersAreSkippedAndCounted() throws {
        let path = try write([
            #"{"prompt": "q", "chosen": "a", "rejected": "a"}"#,
            #"{"prompt": "q", "chosen": "a", "rejected": "b"}"#,
            #"{"prompt": "q", "response_0": "x", "response_1": "x", "safer_response_id": 0}"#,
        ])
        let loaded = try PreferenceFile.load(path)
        XCTAssertEqual(loaded.rows.map(\.line), [2])
        XCTAssertEqual(loaded.skipped.map(\.line), [1, 3])
        XCTAssertEqual(loaded.summary(path: "p"),
                       "read 1 preference pairs from p (1 standard); skipped 2: 2 identical chosen and rejected (lines 1, 3)")
        XCTAssertThrowsError(try PreferenceFile.load(try write([#"{"prompt": "q", "chosen": "a", "rejected": "a"}"#])))
    }

    /// Every malformed row names its line and the field.
    func testMalformedRowsNameLineAndField() throws {
        let cases: [(String, String)] = [
            (#"{"prompt": "q", "chosen": "a"}"#, "field 'rejected': missing"),
            (#"{"prompt": 3, "chosen": "a", "rejected": "b"}"#, "field 'prompt': expected a string, found a number"),
            (#"{"chosen": "a", "rejected": "b"}"#, "field 'prompt': missing (string pairs need an explicit prompt"),
            (#"{"prompt": "q", "chosen": "a", "rejected": "b", "kind": 1}"#, "field 'kind': expected a string, found a number"),
            (#"{"prompt": [{"role": "user", "content": "q"}], "chosen": [{"role": "assistant"}], "rejected": [{"role": "assistant", "content": "b"}]}"#,
             "field 'chosen[0].content': missing"),
            (#"{"prompt": [{"role": "user", "content": "q"}], "chosen": [{"role": "bot", "content": "a"}], "rejected": [{"role": "assistant", "content": "b"}]}"#,
             "field 'chosen[0].role': 'bot' is not system, user or assistant"),
            (#"{"prompt": [{"role": "user", "content": "q"}], "chosen": [{"role": "user", "content": "a"}], "rejected": [{"role": "assistant", "content": "b"}]}"#,
             "field 'chosen[0].role': 'user' in an answer"),
            (#"{"prompt": [{"role": "assistant", "content": "q"}], "chosen": [{"role": "assistant", "content": "a"}], "rejected": [{"role": "assistant", "content": "b"}]}"#,
             "field 'prompt[0].role': the prompt's last turn is 'assistant'"),
            (#"{"prompt": [{"role": "user", "content": "q"}], "chosen": "a", "rejected": [{"role": "assistant", "content": "b"}]}"#,
             "field 'chosen': expected a list of messages, found a string"),
            (#"{"chosen": [{"role": "assistant", "content": "a"}], "rejected": [{"role": "assistant", "content": "b"}]}"#,
             "field 'chosen': no prompt field, and chosen and rejected share no leading user turn"),
            (#"{"prompt": "q", "response_0": "a", "response_1": "b"}"#, "field 'safer_response_id': missing (and no 'better_response_id')"),
            (#"{"prompt": "q", "response_0": "a", "response_1": "b", "safer_response_id": 2}"#, "field 'safer_response_id': expected 0 or 1, found 2"),
            (#"{"prompt": "q", "response_0": "a", "response_1": "b", "safer_response_id": "1"}"#, "field 'safer_response_id': expected 0 or 1, found a string"),
            (#"{"prompt": "q", "response_0": "a", "safer_response_id": 0}"#, "field 'response_1': missing"),
            (#"["prompt", "chosen"]"#, "not a JSON object"),
            (#"{"prompt": "q", "#, "not valid JSON"),
        ]
        for (row, message) in cases {
            let path = try write([#"{"prompt": "fine", "chosen": "a", "rejected": "b"}"#, row])
            XCTAssertThrowsError(try PreferenceFile.load(path), row) { e in
                let text = "\(e)"
                XCTAssertTrue(text.hasPrefix("\(path):2: \(message)"), "\(row) → \(text)")
            }
        }
    }
}
