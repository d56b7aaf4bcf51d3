import Foundation
import XCTest
@testable import Evaluation

/// The OLMES request-file reader, lm-evaluation-harness's scoring rules and the run's output files, on small
/// hand-written request files (the real files are checked against PyTorch by scripts/reference/check_benchmarks.py).
final class BenchmarksTests: XCTestCase {
    func write(_ lines: [String]) throws -> String {
        try TestPaths.write(lines.joined(separator: "\n"), "requests.jsonl", in: TestPaths.tempDir()).path
    }

    func row(doc: Int, idx: Int, label: Int, context: String, continuation: String, query: String? = nil, native: String = "\"q\"") -> String {
        let docField = query.map { #"{"query": \#(String(reflecting: $0))}"# } ?? "{}"
        return #"{"request_type": "loglikelihood", "doc": \#(docField), "request": {"context": \#(String(reflecting: context)), "continuation": \#(String(reflecting: continuation))}, "idx": \#(idx), "doc_id": \#(doc), "native_id": \#(native), "label": \#(label)}"#
    }

    func testLoadsDocumentsInFileOrderWithChoicesByIndexAndSkipsUnconditionalRows() throws {
        let path = try write([
            row(doc: 7, idx: 1, label: 0, context: "shots\n\nQ: a?\nA:", continuation: " no", query: "Q: a?\nA:"),
            row(doc: 7, idx: 0, label: 0, context: "shots\n\nQ: a?\nA:", continuation: " yes", query: "Q: a?\nA:"),
            row(doc: 1_000_007, idx: 0, label: 0, context: "A:", continuation: " yes"),
            "",
            row(doc: 2, idx: 0, label: 1, context: "shots\n\nQ: b?\nA:", continuation: " up", query: "Q: b?\nA:", native: "12"),
            row(doc: 2, idx: 1, label: 1, context: "shots\n\nQ: b?\nA:", continuation: " down", query: "Q: b?\nA:", native: "12"),
        ])
        let items = try Benchmarks.load(path: path)
        XCTAssertEqual(items.map(\.docID), [7, 2])
        XCTAssertEqual(items[0].continuations, [" yes", " no"])
        XCTAssertEqual(items[0].contexts[0], "shots\n\nQ: a?\nA:")
        XCTAssertEqual(items[1].gold, 1)
        XCTAssertEqual(items[1].nativeID, "12")
        let zero = try Benchmarks.load(path: path, queryAsContext: true)
        XCTAssertEqual(zero[0].contexts, ["Q: a?\nA:", "Q: a?\nA:"])
        XCTAssertEqual(zero[0].continuations, items[0].continuations)
    }

    func testMalformedRowsNameLineAndField() throws {
        let good = row(doc: 0, idx: 0, label: 0, context: "c", continuation: " x")
        let cases: [([String], String)] = [
            ([good, "{\"request_type\": \"loglikelihood\", \"doc_id\": 0, \"idx\": 1, \"label\": 0}"], ":2: field 'request': missing"),
            ([good, row(doc: 0, idx: 1, label: 0, context: "c", continuation: " y").replacingOccurrences(of: "\"idx\": 1", with: "\"idx\": \"1\"")], ":2: field 'idx'"),
            ([good, row(doc: 0, idx: 1, label: 1, context: "c", continuation: " y")], ":2: field 'label': 1, but line 1"),
            ([good, row(doc: 0, idx: 0, label: 0, context: "c", continuation: " y")], ":2: field 'idx': choice 0 of document 0 appears twice"),
            ([good, row(doc: 0, idx: 1, label: 0, context: "c", continuation: "")], ":2: field 'request.continuation': empty"),
            ([good, row(doc: 0, idx: 2, label: 0, context: "c", continuation: " y")], ":1: field 'idx': document 0 has choices [0, 2]"),
            ([good, row(doc: 0, idx: 1, label: 0, context: "c", continuation: " y"), row(doc: 1, idx: 0, label: 5, context: "c", continuation: " a"),
              row(doc: 1, idx: 1, label: 5, context: "c", continuation: " b")], ":3: field 'label': 5 is not one of document 1's 2 choices"),
            ([good, "[1, 2]"], ":2: not a JSON object"),
            ([good, "{not json"], ":2: not valid JSON"),
            ([good.replacingOccurrences(of: "loglikelihood", with: "generate_until")], ":1: field 'request_type'"),
        ]
        for (lines, want) in cases {
            let path = try write(lines)
            XCTAssertThrowsError(try Benchmarks.load(path: path)) { e in
                let text = String(describing: e)
                XCTAssertTrue(text.hasPrefix(path), text)
                XCTAssertTrue(text.contains(want), "\(text) lacks \(want)")
            }
        }
        let noQuery = try write([good, row(doc: 0, idx: 1, label: 0, context: "c", continuation: " y")])
        XCTAssertThrowsError(try Benchmarks.load(path: noQuery, queryAsContext: true)) { e in
            XCTAssertTrue(String(describing: e).contains(":1: field 'doc.query'"), String(describing: e))
        }
        XCTAssertThrowsError(try Benchmarks.load(path: "/nonexistent/bench.jsonl")) { e in
            XCTAssertTrue(String(describing: e).contains("/nonexistent/bench.jsonl"))
        }
    }

    func testScoringFollowsLmEvaluationHarness() throws {
        let item = Benchmarks.Item(docID: 3, nativeID: nil, contexts: ["c", "c", "c"],
                                   continuations: [" ab", " abcdefgh", " é"], gold: 1)
        // acc: the largest sum wins (choice 0); acc_norm divides by UTF-8 bytes: −2/3, −4/9, −2.5/3 (" é" is 3 bytes).
        let s = try Benchmarks.score(benchmark: "t", item: item, logLikelihoods: [-2, -4, -2.5])
        XCTAssertEqual(s.continuationBytes, [3, 9, 3])
        XCTAssertEqual(s.prediction, 0)
        XCTAssertEqual(s.predictionNorm, 1)
        // Ties go to the first choice, as numpy.argmax.
        XCTAssertEqual(try Benchmarks.score(benchmark: "t", item: item, logLikelihoods: [-1, -1, -1]).prediction, 0)
        XCTAssertThrowsError(try Benchmarks.score(benchmark: "t", item: item, logLikelihoods: [-1, -1]))
        XCTAssertThrowsError(try Benchmarks.score(benchmark: "t", item: item, logLikelihoods: [-1, .nan, -1]))
        // Standard error of a mean of 0/1 scores, sample sd / √n: 3 of 4 → sqrt(0.25) / 2 = 0.25.
        XCTAssertEqual(Benchmarks.meanStderr(hits: 3, of: 4), 0.25, accuracy: 1e-12)
        // 116 of 313: sqrt(p(1 − p)/(n − 1)) = 0.027346…
        XCTAssertEqual(Benchmarks.meanStderr(hits: 116, of: 313), (116.0 / 313 * (197.0 / 313) / 312).squareRoot(), accuracy: 1e-12)
        let r = Benchmarks.result(benchmark: "t", shots: 0, split: "test", items: [s, s, try Benchmarks.score(benchmark: "t", item: item, logLikelihoods: [-9, -1, -9])])
        XCTAssertEqual(r.count, 3)
        XCTAssertEqual(r.acc, 1.0 / 3, accuracy: 1e-12)
        XCTAssertEqual(r.accNorm, 1.0, accuracy: 1e-12)
        XCTAssertEqual(r.accNormStderr, 0, accuracy: 1e-12)
    }

    func testSeededSubsetsAreStableAndInFileOrder() {
        let items = (0..<50).map { Benchmarks.Item(docID: $0, nativeID: nil, contexts: ["c", "c"], continuations: [" a", " b"], gold: 0) }
        let a = Benchmarks.subset(items, count: 10, seed: 4)
        XCTAssertEqual(a.map(\.docID), Benchmarks.subset(items, count: 10, seed: 4).map(\.docID))
        XCTAssertEqual(a.count, 10)
        XCTAssertEqual(a.map(\.docID), a.map(\.docID).sorted())
        XCTAssertNotEqual(a.map(\.docID), Benchmarks.subset(items, count: 10, seed: 5).map(\.docID))
        XCTAssertEqual(Benchmarks.subset(items, count: nil, seed: 4).count, 50)
        XCTAssertEqual(Benchmarks.subset(items, count: 80, seed: 4).count, 50)
    }

    /// A scorer that gives each continuation minus its length, so the outcome is known without a model.
    struct LengthScorer: CapabilityScoring {
        func continuationLogLikelihoods(_ pairs: [(context: String, continuation: String)]) throws -> [Double] {
            pairs.map { -Double($0.continuation.count) }
        }
        func textNLL(_ text: String, window: Int) throws -> (sumNLL: Double, tokens: Int) { (0, 0) }
        func complete(_ prompts: [String], maxNewTokens: Int, stopSequences: [String]) throws -> [String] { prompts.map { _ in "" } }
    }

    func testRunWritesSummaryAndPerItemFile() throws {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("bench-run-\(UUID().uuidString.prefix(8))")
        let folder = root.appendingPathComponent("benchmarks")
        try FileManager.default.createDirectory(at: folder.appendingPathComponent("piqa"), withIntermediateDirectories: true)
        var lines: [String] = []
        for d in 0..<20 {
            lines.append(row(doc: d, idx: 0, label: d % 2, context: "Goal: g\(d)\nAnswer:", continuation: " short"))
            lines.append(row(doc: d, idx: 1, label: d % 2, context: "Goal: g\(d)\nAnswer:", continuation: " much longer"))
        }
        try lines.joined(separator: "\n").write(to: folder.appendingPathComponent("piqa/rc_0shot.jsonl"), atomically: true, encoding: .utf8)
        let out = root.appendingPathComponent("out")
        let s = try CapabilitySuite(names: ["piqa"], shots: 0, limit: 8, seed: 1, folder: folder)
            .run(LengthScorer(), method: "m", output: out)
        let r = try XCTUnwrap(s.benchmarks?.first)
        XCTAssertEqual(r.count, 8)
        XCTAssertEqual(s.primaryMetric, "piqa_acc_norm")
        XCTAssertEqual(s.metrics["piqa_acc"], r.acc)
        // Choice 0 always wins, so acc = the share of drawn documents whose gold is 0.
        let items = try String(contentsOf: out.appendingPathComponent("benchmark_items.jsonl"), encoding: .utf8)
            .split(separator: "\n").map { try JSONSerialization.jsonObject(with: Data($0.utf8)) as! [String: Any] }
        XCTAssertEqual(items.count, 8)
        XCTAssertEqual(r.acc, Double(items.filter { ($0["gold"] as! Int) == 0 }.count) / 8, accuracy: 1e-12)
        XCTAssertEqual(items[0]["loglikelihoods"] as? [Double], [-6, -12])
        XCTAssertEqual(items[0]["continuation_bytes"] as? [Int], [6, 12])
        let back = try CapabilitySummary.read(from: out)
        XCTAssertEqual(back.benchmarks, s.benchmarks)
        XCTAssertThrowsError(try CapabilitySuite(names: ["mmlu_pro"], shots: 0, limit: nil, seed: 0, folder: folder)
            .run(LengthScorer(), method: "m", output: out))
    }
}
