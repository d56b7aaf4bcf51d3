import Foundation
import XCTest
@testable import Evaluation

final class ResponseFileTests: XCTestCase {
    func write(_ text: String) throws -> URL {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("responses-\(UUID().uuidString.prefix(8)).jsonl")
        try Data(text.utf8).write(to: url)
        return url
    }

    func testPromptResponseLinesFromOtherTools() throws {
        let url = try write(#"{"prompt": "q1", "response": "a1", "model": "x", "temperature": 0.70, "id": 12345678901234567890}"# + "\n"
                            + #"{"response":"a2","prompt":"q2","category":"c","tokens":3}"#)
        let loaded = try ResponseFile.load(url)
        XCTAssertFalse(loaded.droppedTornLine)  // an unterminated last line that parses is kept
        XCTAssertEqual(loaded.records.map(\.prompt), ["q1", "q2"])
        XCTAssertEqual(loaded.records.map(\.response), ["a1", "a2"])
        XCTAssertEqual(loaded.records.map(\.category), [nil, "c"])
        XCTAssertEqual(loaded.records.map(\.tokens), [nil, 3])
        XCTAssertEqual(loaded.records[0].members.map(\.key), ["prompt", "response", "model", "temperature", "id"])
        // Values keep their exact source text: 0.70 stays 0.70, a 20-digit id is not rounded through a Double.
        XCTAssertEqual(loaded.records[0].members.map(\.raw), [#""q1""#, #""a1""#, #""x""#, "0.70", "12345678901234567890"])
    }

    func testConfiguredFieldNamesAndMessages() throws {
        let url = try write(#"{"question": "q", "answer": "a"}"# + "\n"
                            + #"{"messages": [{"role": "system", "content": "s"}, {"role": "user", "content": "q2"}, {"role": "assistant", "content": [{"type": "text", "text": "a2"}]}]}"# + "\n")
        let records = try ResponseFile.load(url, fields: ResponseFields(prompt: "question", response: "answer")).records
        XCTAssertEqual(records.map(\.prompt), ["q", "q2"])
        XCTAssertEqual(records.map(\.response), ["a", "a2"])
    }

    func testErrorsNameLineAndField() throws {
        let cases: [(String, String)] = [
            (#"{"prompt": "q"}"#, "field 'response': missing (and no 'messages' conversation ending with the assistant's turn)"),
            (#"{"response": "a"}"#, "field 'prompt': missing"),
            (#"{"prompt": ["q"], "response": "a"}"#, "field 'prompt': expected a string, found a list"),
            (#"{"prompt": "q", "response": "a", "tokens": "3"}"#, "field 'tokens': expected a non-negative whole number, found a string"),
            (#"{"prompt": "q", "response": "a", "tokens": -1}"#, "field 'tokens': expected a non-negative whole number, found a number"),
            (#"{"messages": [{"role": "user", "content": "q"}]}"#, "field 'messages[0].role': the last turn is 'user'"),
            (#"{"messages": [{"role": "assistant", "content": "a"}]}"#, "field 'messages': no user turn before the assistant's last turn"),
            (#"{"messages": [{"role": "user", "content": 5}, {"role": "assistant", "content": "a"}]}"#,
             "field 'messages[0].content': expected a string or a list of text parts, found a number"),
            (#"{"messages": "hi"}"#, "field 'messages': expected a list of messages, found a string"),
            (#"[1, 2]"#, "not a JSON object"),
            (#"{"prompt": "q", "response": }"#, "not valid JSON"),
        ]
        for (line, message) in cases {
            let url = try write(#"{"prompt": "ok", "response": "fine"}"# + "\n" + line + "\n")
            XCTAssertThrowsError(try ResponseFile.load(url), line) { e in
                guard case let .malformed(path, lineNo, reason)? = e as? EvaluationError else { return XCTFail("\(e)") }
                XCTAssertEqual(path, url.path); XCTAssertEqual(lineNo, 2)
                XCTAssertTrue(reason.hasPrefix(message), "\(line) → \(reason)")
            }
        }
        // A torn last line (a killed writer) is dropped and reported, not fatal.
        let torn = try ResponseFile.load(try write(#"{"prompt": "ok", "response": "fine"}"# + "\n" + #"{"prompt": "q", "resp"#))
        XCTAssertTrue(torn.droppedTornLine)
        XCTAssertEqual(torn.records.count, 1)
    }

    func testJudgedLineCarriesEveryFieldThrough() throws {
        let url = try write(#"{"question": "q", "answer": "a", "temperature": 0.70, "verdict": "old", "nested": {"k": [1, "}"]}}"# + "\n")
        let r = try ResponseFile.load(url, fields: ResponseFields(prompt: "question", response: "answer")).records[0]
        let line = try ResponseFile.judgedLine(r, tokens: 7, judgement: Judgement(verdict: .refused, reason: "I can't"), judge: "refusal")
        let text = String(decoding: line, as: UTF8.self)
        XCTAssertTrue(text.hasPrefix(#"{"question":"q","answer":"a","temperature":0.70,"nested":{"k": [1, "}"]},"#), text)
        XCTAssertTrue(text.hasSuffix("}\n"))
        let obj = try XCTUnwrap(try JSONSerialization.jsonObject(with: line) as? [String: Any])
        XCTAssertEqual(obj["verdict"] as? String, "refused")  // the old verdict is replaced, not duplicated
        XCTAssertEqual(text.components(separatedBy: "\"verdict\"").count, 2)
        XCTAssertEqual(obj["prompt"] as? String, "q")
        XCTAssertEqual(obj["response"] as? String, "a")
        XCTAssertEqual(obj["tokens"] as? Int, 7)
        XCTAssertEqual(obj["judge"] as? String, "refusal")
        XCTAssertEqual(obj["reason"] as? String, "I can't")
        XCTAssertTrue(obj["score"] is NSNull)
        // The output reads back as generations.
        let back = try GenerationLog.load(try write(text))
        XCTAssertEqual(back.records.first?.verdict, .refused)
        XCTAssertEqual(back.records.first?.tokens, 7)
    }
}
