import Foundation
import XCTest
@testable import Evaluation

final class GenerationLogTests: XCTestCase {
    func rec(_ i: Int, _ v: Verdict? = .refused) -> GenerationRecord {
        GenerationRecord(prompt: "prompt \(i)\nwith newline", response: "response \(i) \"quoted\"", category: i % 2 == 0 ? "even" : nil, verdict: v, tokens: i)
    }

    func testAppendThenLoadRoundTripsWithFixedKeys() throws {
        let url = try TestPaths.tempDir().appendingPathComponent("run/generations.jsonl")
        let a = try GenerationAppender(url: url)
        XCTAssertTrue(a.existing.isEmpty)
        for i in 0..<3 { try a.append(rec(i)) }
        try a.close()
        let text = try String(contentsOf: url, encoding: .utf8)
        XCTAssertEqual(text.split(separator: "\n").count, 3)
        XCTAssertTrue(text.hasPrefix("{\"category\":\"even\",\"prompt\":\"prompt 0\\nwith newline\","), text)
        XCTAssertTrue(text.contains("\"category\":null"))
        let l = try GenerationLog.load(url)
        XCTAssertEqual(l.records, (0..<3).map { rec($0) })
        XCTAssertFalse(l.droppedTornLine)
    }

    func testTornLastLineIsDroppedAndResumeContinuesCleanly() throws {
        let url = try TestPaths.tempDir().appendingPathComponent("generations.jsonl")
        let a = try GenerationAppender(url: url)
        try a.append(rec(0)); try a.append(rec(1))
        try a.close()
        // Simulate a kill in the middle of writing the third line.
        let h = try FileHandle(forWritingTo: url)
        try h.seekToEnd(); try h.write(contentsOf: Data("{\"prompt\":\"prompt 2\",\"resp".utf8)); try h.close()

        let loaded = try GenerationLog.load(url)
        XCTAssertEqual(loaded.records.count, 2)
        XCTAssertTrue(loaded.droppedTornLine)

        let b = try GenerationAppender(url: url, resume: true)
        XCTAssertEqual(b.existing, [rec(0), rec(1)])
        try b.append(rec(2, .complied))
        try b.close()
        let again = try GenerationLog.load(url)
        XCTAssertEqual(again.records, [rec(0), rec(1), rec(2, .complied)])
        XCTAssertFalse(again.droppedTornLine)
    }

    func testCompleteLastLineWithoutNewlineIsKeptAndNewlineAdded() throws {
        let url = try TestPaths.tempDir().appendingPathComponent("g.jsonl")
        let line = String(decoding: try GenerationAppender.encodeLine(rec(5), path: ""), as: UTF8.self)
        try Data(line.dropLast().utf8).write(to: url)
        let b = try GenerationAppender(url: url)
        XCTAssertEqual(b.existing, [rec(5)])
        try b.append(rec(6)); try b.close()
        XCTAssertEqual(try GenerationLog.load(url).records, [rec(5), rec(6)])
    }

    func testCorruptMiddleLineIsAnErrorWithLineNumber() throws {
        let url = try TestPaths.tempDir().appendingPathComponent("g.jsonl")
        let good = String(decoding: try GenerationAppender.encodeLine(rec(1), path: ""), as: UTF8.self)
        try Data((good + "not json\n" + good).utf8).write(to: url)
        XCTAssertThrowsError(try GenerationLog.load(url)) { e in
            guard case let .malformed(_, line, _)? = e as? EvaluationError else { return XCTFail("\(e)") }
            XCTAssertEqual(line, 2)
        }
    }

    func testFreshStartTruncatesAndMissingFileLoadsEmpty() throws {
        let url = try TestPaths.tempDir().appendingPathComponent("g.jsonl")
        XCTAssertEqual(try GenerationLog.load(url).records.count, 0)
        let a = try GenerationAppender(url: url); try a.append(rec(1)); try a.close()
        let b = try GenerationAppender(url: url, resume: false)
        XCTAssertTrue(b.existing.isEmpty); try b.append(rec(2)); try b.close()
        XCTAssertEqual(try GenerationLog.load(url).records, [rec(2)])
        try GenerationLog.write([rec(3), rec(4)], to: url)
        XCTAssertEqual(try GenerationLog.load(url).records, [rec(3), rec(4)])
    }
}
