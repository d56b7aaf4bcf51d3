import Foundation
import XCTest
@testable import Evaluation

/// GSM8K's reader, answer extraction and exact match on hand-written requests (the real file is checked problem by
/// problem against transformers by scripts/reference/check_gsm8k.py).
final class GSM8KTests: XCTestCase {
    func write(_ lines: [String]) throws -> String {
        try TestPaths.write(lines.joined(separator: "\n"), "requests.jsonl", in: TestPaths.tempDir()).path
    }

    func row(_ doc: Int, question: String, answer: String, stops: String = #"["Question:", "\n\n"]"#) -> String {
        #"{"request_type": "generate_until_and_loglikelihood", "doc_id": \#(doc), "doc": {"question": \#(String(reflecting: question)), "short_answer": \#(String(reflecting: answer)), "id": \#(doc)}, "request": {"context": "Question: 1+1?\nAnswer: 2. So the answer is 2.\n\nQuestion: \#(question)\nAnswer:", "stop_sequences": \#(stops), "generation_kwargs": {"max_gen_toks": 64}}}"#
    }

    func testReaderKeepsContextStopsAndBudgetAndNamesBadFields() throws {
        let items = try GSM8K.load(path: write([row(3, question: "2+2?", answer: "4"), "", row(5, question: "3+3?", answer: "1,000")]))
        XCTAssertEqual(items.map(\.docID), [3, 5])
        XCTAssertEqual(items[0].stopSequences, ["Question:", "\n\n"])
        XCTAssertEqual(items[0].maxNewTokens, 64)
        XCTAssertTrue(items[0].context(shots: 5).hasSuffix("Question: 2+2?\nAnswer:"))
        XCTAssertEqual(items[0].context(shots: 0), "Question: 2+2?\nAnswer:")
        let bad = try write([row(1, question: "q", answer: "1"), #"{"doc_id": 2, "doc": {"question": "q"}, "request": {"context": "c"}}"#])
        XCTAssertThrowsError(try GSM8K.load(path: bad)) { e in
            XCTAssertTrue("\(e)".contains(":2") && "\(e)".contains("short_answer"), "\(e)")
        }
        XCTAssertThrowsError(try GSM8K.load(path: write([row(1, question: "q", answer: "1", stops: "[1]")]))) { e in
            XCTAssertTrue("\(e)".contains("stop_sequences"), "\(e)")
        }
    }

    func testExtractionAndExactMatchFollowOLMES() throws {
        XCTAssertEqual(GSM8K.extract(" She has 3 + 4 = 7 apples. So the answer is 7."), "7")
        XCTAssertEqual(GSM8K.extract("It costs $1,250.50 in total"), "$1,250.50")
        XCTAssertEqual(GSM8K.extract("first 12 then #### 42 and 99"), "42")
        XCTAssertNil(GSM8K.extract("no digits here"))
        XCTAssertEqual(GSM8K.normalize("$1,250."), "1250")
        XCTAssertEqual(GSM8K.normalize("work #### 18"), "18")
        XCTAssertEqual(GSM8K.truncate(" 5.\n\nQuestion: next", at: ["Question:", "\n\n"]), " 5.")
        let item = try GSM8K.load(path: write([row(0, question: "q", answer: "1,000")]))[0]
        XCTAssertTrue(GSM8K.score(item, generation: " So the answer is 1000.\n\nQuestion: x 7").exactMatch)
        XCTAssertFalse(GSM8K.score(item, generation: " It is 999.").exactMatch)
        let r = GSM8K.result(shots: 8, items: [GSM8K.score(item, generation: "1000"), GSM8K.score(item, generation: "3")])
        XCTAssertEqual(r.acc, 0.5)
        XCTAssertEqual(r.accStderr, 0.5, accuracy: 1e-12)   // sample sd 0.7071 / √2
    }

    /// A scorer whose answer is the last number of the prompt's question plus one, stopping text included.
    struct EchoScorer: CapabilityScoring {
        func continuationLogLikelihoods(_ pairs: [(context: String, continuation: String)]) throws -> [Double] { [] }
        func textNLL(_ text: String, window: Int) throws -> (sumNLL: Double, tokens: Int) { (0, 0) }
        func complete(_ prompts: [String], maxNewTokens: Int, stopSequences: [String]) throws -> [String] {
            prompts.map { p in GSM8K.truncate(" So the answer is \(Int(GSM8K.extract(p.components(separatedBy: "Question:").last!)!)! + 1).\n\nQuestion: 0",
                                              at: stopSequences) }
        }
    }

    func testRunScoresGSM8KIntoSummaryAndItems() throws {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("gsm-run-\(UUID().uuidString.prefix(8))")
        let folder = root.appendingPathComponent("benchmarks")
        try FileManager.default.createDirectory(at: folder.appendingPathComponent("gsm8k"), withIntermediateDirectories: true)
        let lines = (0..<6).map { row($0, question: "what is \($0) plus one?", answer: $0 % 2 == 0 ? "\($0 + 1)" : "0") }
        try lines.joined(separator: "\n").write(to: folder.appendingPathComponent(GSM8K.file), atomically: true, encoding: .utf8)
        let out = root.appendingPathComponent("out")
        let s = try CapabilitySuite(names: ["gsm8k"], shots: 5, limit: nil, seed: 0, folder: folder).run(EchoScorer(), method: "m", output: out)
        XCTAssertEqual(s.primaryMetric, "gsm8k_exact_match")
        XCTAssertEqual(s.metrics["gsm8k_exact_match"], 0.5)
        let items = try String(contentsOf: out.appendingPathComponent("benchmark_items.jsonl"), encoding: .utf8)
            .split(separator: "\n").map { try JSONSerialization.jsonObject(with: Data($0.utf8)) as! [String: Any] }
        XCTAssertEqual(items.count, 6)
        XCTAssertEqual(items[0]["generation"] as? String, " So the answer is 1.")   // cut at the stop sequence
        XCTAssertEqual(items[0]["extracted"] as? String, "1")
    }
}
