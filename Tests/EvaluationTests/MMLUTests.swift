import Foundation
import XCTest
import ModelFiles
@testable import Evaluation

/// MMLU from its Arrow files: the prompts against OLMES's own `MMLU.doc_to_text` (expected.json, written by
/// scripts/reference/make_arrow_fixtures.py from the wheel's tasks.py), bad rows, missing files, and the real
/// vendor files when they are present.
final class MMLUTests: XCTestCase {
    let fixtureFolder = TestPaths.fixtures
    let vendorFolder = TestPaths.repoRoot.appendingPathComponent("vendor-data/benchmarks")

    func testPromptsAreOLMESDocToTextForZeroAndFiveShots() throws {
        let expected = try JSONSerialization.jsonObject(with: Data(contentsOf: fixtureFolder.appendingPathComponent("mmlu/expected.json"))) as! [String: Any]
        let subjects = expected["subjects"] as! [String]
        let items = expected["items"] as! [[String: Any]]
        for shots in [0, 5] {
            let loaded = try MMLU.load(folder: fixtureFolder, shots: shots, only: subjects)
            XCTAssertEqual(loaded.count, items.count)
            XCTAssertEqual(loaded.map(\.docID), Array(0..<items.count))
            for (got, want) in zip(loaded, items) {
                let context = want["context_\(shots)shot"] as! String
                XCTAssertEqual(got.nativeID, want["native_id"] as? String)
                XCTAssertEqual(got.gold, want["gold"] as? Int)
                XCTAssertEqual(got.continuations, want["continuations"] as? [String])
                XCTAssertEqual(got.contexts, Array(repeating: context, count: got.continuations.count), "\(shots)-shot \(got.nativeID ?? "")")
            }
        }
    }

    func testPythonStripRemovesWhatStrIsspaceAccepts() {
        XCTAssertEqual(MMLU.pythonStrip(" \t\u{1C}\u{2003}a b\u{85}\u{3000}\n"), "a b")
        // U+200B ZERO WIDTH SPACE is not whitespace to Python.
        XCTAssertEqual(MMLU.pythonStrip("\u{200B}x "), "\u{200B}x")
        XCTAssertEqual(MMLU.pythonStrip(" \n "), "")
    }

    func testBadRowsNameFileRowAndColumn() throws {
        let folder = fixtureFolder.appendingPathComponent("mmlu_bad")
        let cases: [(String, String)] = [
            ("answer_out_of_range", "row 1, column 'answer': 4 is not one of the 4 choices"),
            ("null_question", "row 1, column 'question': null"),
            ("null_choice", "row 1, column 'choices': choice 1 is null"),
            ("one_choice", "row 1, column 'choices': 1 choices (needs at least 2)"),
            ("string_answer", "column 'answer' is Utf8, expected Int32 or Int64"),
        ]
        for (name, want) in cases {
            let path = folder.appendingPathComponent("\(name).arrow").path
            XCTAssertThrowsError(try MMLU.readQuestions(path: path), name) { e in
                let text = String(describing: e)
                XCTAssertTrue(text.hasPrefix(path + ": "), text)
                XCTAssertTrue(text.contains(want), "\(text) lacks \(want)")
            }
        }
        let anatomy = fixtureFolder.appendingPathComponent("mmlu/anatomy/test.arrow").path
        XCTAssertThrowsError(try MMLU.readQuestions(path: anatomy, subject: "virology")) { e in
            XCTAssertTrue(String(describing: e).contains("row 0, column 'subject': 'anatomy' in the file of subject 'virology'"), String(describing: e))
        }
    }

    func testMissingFilesSayToRunSetupAndShotsAreZeroOrFive() throws {
        let empty = try TestPaths.tempDir()
        XCTAssertThrowsError(try Benchmarks.load(try Benchmarks.spec("mmlu").source(shots: 0), folder: empty)) { e in
            let text = String(describing: e)
            XCTAssertTrue(text.contains("mmlu/abstract_algebra/test.arrow"), text)
            XCTAssertTrue(text.contains("run scripts/setup.sh"), text)
        }
        XCTAssertThrowsError(try MMLU.load(folder: fixtureFolder, shots: 3, only: ["anatomy"]))
    }

    func testCatalogNamesMMLU() throws {
        XCTAssertTrue(Benchmarks.names.contains("mmlu"))
        let spec = try Benchmarks.spec("mmlu")
        XCTAssertEqual(spec.source(shots: 0).format, .mmluArrow(shots: 0))
        XCTAssertEqual(spec.source(shots: 5).format, .mmluArrow(shots: 5))
        XCTAssertEqual(MMLU.subjects.count, 57)
        XCTAssertEqual(Set(MMLU.subjects).count, 57)
    }

    func vendorFilesOrSkip() throws {
        let probe = MMLU.path(folder: vendorFolder, subject: "world_religions", split: "test").path
        guard FileManager.default.fileExists(atPath: probe) else {
            throw XCTSkip("vendor-data/benchmarks/mmlu absent (scripts/setup.sh fetches it)")
        }
    }

    /// The real files: 14,042 test questions over 57 subjects (professional_law's 1,534 in two record batches),
    /// 285 dev questions, every prompt built.
    func testRealMMLULoadsAllTestQuestions() throws {
        try vendorFilesOrSkip()
        let zero = try MMLU.load(folder: vendorFolder, shots: 0)
        XCTAssertEqual(zero.count, 14_042)
        XCTAssertEqual(zero.map(\.docID), Array(0..<14_042))
        XCTAssertEqual(zero.first?.nativeID, "abstract_algebra/0")
        XCTAssertEqual(zero.last?.nativeID, "world_religions/170")
        XCTAssertEqual(zero.filter { $0.nativeID!.hasPrefix("professional_law/") }.count, 1_534)
        XCTAssertTrue(zero.allSatisfy { $0.continuations.count == 4 })
        XCTAssertEqual(zero[0].contexts[0], "Question: Find the degree for the given field extension Q(sqrt(2), sqrt(3), sqrt(18)) over Q.\nAnswer:")
        XCTAssertEqual(zero[0].continuations, [" 0", " 4", " 2", " 6"])
        XCTAssertEqual(zero[0].gold, 1)
        var dev = 0
        for s in MMLU.subjects { dev += try MMLU.readQuestions(path: MMLU.path(folder: vendorFolder, subject: s, split: "dev").path, subject: s).count }
        XCTAssertEqual(dev, 285)
        let five = try MMLU.load(folder: vendorFolder, shots: 5)
        XCTAssertEqual(five.count, 14_042)
        XCTAssertTrue(five[0].contexts[0].hasPrefix("The following are multiple choice questions (with answers) about abstract algebra:\n\nQuestion: "))
        XCTAssertTrue(five[0].contexts[0].hasSuffix("\n\n" + zero[0].contexts[0]))
        XCTAssertEqual(five[0].contexts[0].components(separatedBy: "Question: ").count - 1, 6)
    }

    /// The capability suite draws a seeded subset from all 14,042 questions, like the other benchmarks.
    func testSuiteScoresASeededSubsetOfAllSubjects() throws {
        try vendorFilesOrSkip()
        let out = try TestPaths.tempDir()
        let s = try CapabilitySuite(names: ["mmlu"], shots: 0, limit: 40, seed: 3, folder: vendorFolder)
            .run(BenchmarksTests.LengthScorer(), method: "m", output: out)
        let r = try XCTUnwrap(s.benchmarks?.first)
        XCTAssertEqual(r.benchmark, "mmlu")
        XCTAssertEqual(r.count, 40)
        XCTAssertEqual(r.split, "test (57 subjects, micro-average)")
        XCTAssertEqual(s.primaryMetric, "mmlu_acc_norm")
        let lines = try String(contentsOf: out.appendingPathComponent("benchmark_items.jsonl"), encoding: .utf8)
            .split(separator: "\n").map { try JSONSerialization.jsonObject(with: Data($0.utf8)) as! [String: Any] }
        let ids = lines.map { $0["doc_id"] as! Int }
        XCTAssertEqual(ids, ids.sorted())
        XCTAssertEqual(Set(lines.map { ($0["native_id"] as! String).split(separator: "/")[0] }).count > 10, true)
        let again = try CapabilitySuite(names: ["mmlu"], shots: 0, limit: 40, seed: 3, folder: vendorFolder)
            .run(BenchmarksTests.LengthScorer(), method: "m", output: try TestPaths.tempDir())
        XCTAssertEqual(again.benchmarks, s.benchmarks)
    }
}
