import Foundation
import XCTest

/// Checks the committed prompt and refusal lists under data/.
final class DataFilesTests: XCTestCase {
    /// Lines after an optional leading block of `#` comments; fails on blank lines anywhere.
    func lines(_ name: String, file: StaticString = #filePath, line: UInt = #line) throws -> [String] {
        let url = Fixtures.repoRoot.appendingPathComponent("data").appendingPathComponent(name)
        let text = try String(contentsOf: url, encoding: .utf8)
        var out: [String] = []
        var header = true
        for (i, raw) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let s = String(raw)
            if header && s.hasPrefix("#") { continue }
            header = false
            if s.isEmpty {
                // Only the final newline may produce an empty piece.
                XCTAssertEqual(i, text.split(separator: "\n", omittingEmptySubsequences: false).count - 1,
                               "\(name): blank line \(i + 1)", file: file, line: line)
                continue
            }
            XCTAssertFalse(s.hasPrefix("#"), "\(name):\(i + 1): comment after the header", file: file, line: line)
            XCTAssertEqual(s, s.trimmingCharacters(in: .whitespaces), "\(name):\(i + 1): stray whitespace", file: file, line: line)
            out.append(s)
        }
        return out
    }

    func normalized(_ s: String) -> String {
        s.lowercased().split(whereSeparator: { !$0.isLetter && !$0.isNumber }).joined(separator: " ")
    }

    func testHarmlessPrompts() throws {
        let prompts = try lines("harmless_identify.txt")
        XCTAssertGreaterThanOrEqual(prompts.count, 500)
        var seen: [String: Int] = [:]
        for (i, p) in prompts.enumerated() {
            if let j = seen[normalized(p)] { XCTFail("duplicate prompt: \(i) repeats \(j): \(p)") }
            seen[normalized(p)] = i
            let words = p.split(separator: " ").count
            XCTAssertTrue((3...45).contains(words), "prompt length \(words) words: \(p)")
        }
        // Benign uses of words that also occur in harmful prompts keep the groups from being
        // separable by vocabulary alone.
        let lower = prompts.map { $0.lowercased() }
        for w in ["kill", "shoot", "attack", "poison", "weapon", "hack", "explo"] {
            XCTAssertTrue(lower.contains { $0.contains(w) }, "no benign prompt uses '\(w)'")
        }
    }

    func testRefusals() throws {
        let refusals = try lines("refusals.txt")
        XCTAssertGreaterThanOrEqual(refusals.count, 36)
        XCTAssertEqual(Set(refusals.map(normalized)).count, refusals.count, "duplicate refusals")
        for r in refusals {
            let sentences = r.split(whereSeparator: { ".!?".contains($0) }).filter {
                !$0.trimmingCharacters(in: .whitespaces).isEmpty
            }
            XCTAssertTrue((1...3).contains(sentences.count), "\(sentences.count) sentences: \(r)")
        }
        // Varied openings, not one template.
        XCTAssertGreaterThanOrEqual(Set(refusals.map { $0.split(separator: " ").prefix(2).joined(separator: " ") }).count, 15)
    }
}
