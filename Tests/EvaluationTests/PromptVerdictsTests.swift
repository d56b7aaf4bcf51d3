import Foundation
import XCTest
@testable import Evaluation

final class PromptVerdictsTests: XCTestCase {
    func testPromptVerdictsLoadAndMatch() throws {
        let dir = try TestPaths.tempDir()
        let a = dir.appendingPathComponent("a"), b = dir.appendingPathComponent("b"), c = dir.appendingPathComponent("c")
        func records(_ vs: [Verdict?], prompts: [String]? = nil) -> [GenerationRecord] {
            vs.enumerated().map { GenerationRecord(prompt: prompts?[$0.offset] ?? "p\($0.offset)", response: "r", verdict: $0.element, tokens: 1) }
        }
        try FileManager.default.createDirectory(at: a, withIntermediateDirectories: true)
        try FileManager.default.createDirectory(at: b, withIntermediateDirectories: true)
        try FileManager.default.createDirectory(at: c, withIntermediateDirectories: true)
        try GenerationLog.write(records([.complied, .refused, .degenerate, .complied]), to: a.appendingPathComponent("generations.jsonl"))
        try GenerationLog.write(records([.refused, .refused, .complied, .complied]), to: b.appendingPathComponent("generations.jsonl"))
        try GenerationLog.write(records([.complied, .refused, .refused, .complied], prompts: ["p0", "p1", "other", "p3"]),
                                to: c.appendingPathComponent("generations.jsonl"))
        let va = try PromptVerdicts.load(folder: a), vb = try PromptVerdicts.load(folder: b)
        XCTAssertEqual(va.complied, [true, false, false, true])
        XCTAssertEqual(va.compliedCount, 2)
        XCTAssertEqual(va.compliedByIndex, [0: true, 1: false, 2: false, 3: true])
        let (x, y) = try PromptVerdicts.matched(va, vb)
        XCTAssertEqual(x, [true, false, false, true]); XCTAssertEqual(y, [false, false, true, true])
        XCTAssertThrowsError(try PromptVerdicts.matched(va, try PromptVerdicts.load(folder: c)))
        XCTAssertThrowsError(try PromptVerdicts.load(folder: dir.appendingPathComponent("missing")))

        let unjudged = dir.appendingPathComponent("u")
        try FileManager.default.createDirectory(at: unjudged, withIntermediateDirectories: true)
        try GenerationLog.write(records([.complied, nil]), to: unjudged.appendingPathComponent("generations.jsonl"))
        XCTAssertThrowsError(try PromptVerdicts.load(folder: unjudged))
    }
}
