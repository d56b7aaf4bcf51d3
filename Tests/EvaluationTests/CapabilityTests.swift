import Foundation
import XCTest
@testable import Evaluation

final class CapabilityTests: XCTestCase {
    func testAccAndAccNormDiffer() throws {
        // Item 1: raw loglik favours the short wrong choice; per-byte loglik favours the long right one.
        let a = Capability.MCScore(logLikelihoods: [-4, -6], choiceTexts: [" no", " the longer correct answer"], answer: 1)
        // Item 2: both metrics pick the right answer.
        let b = Capability.MCScore(logLikelihoods: [-1, -5, -9], choiceTexts: [" x", " y", " z"], answer: 0)
        let r = try Capability.multipleChoice([a, b])
        XCTAssertEqual(r.acc, 0.5); XCTAssertEqual(r.accNorm, 1.0); XCTAssertEqual(r.count, 2)
        // UTF-8 bytes, not characters: " éé" is 5 bytes (-4/5 = -0.8 beats -3/3 = -1); per character it would lose (-4/3).
        let c = Capability.MCScore(logLikelihoods: [-3, -4], choiceTexts: [" ab", " éé"], answer: 1)
        XCTAssertEqual(try Capability.multipleChoice([c]).accNorm, 1.0)
        XCTAssertEqual(try Capability.multipleChoice([c]).acc, 0.0)
    }

    func testTiesPickFirstAndBadItemsThrow() throws {
        XCTAssertEqual(Capability.argmax([1, 3, 3]), 1)
        XCTAssertNil(Capability.argmax([]))
        XCTAssertThrowsError(try Capability.multipleChoice([]))
        XCTAssertThrowsError(try Capability.multipleChoice([.init(logLikelihoods: [-1], choiceTexts: ["a", "b"], answer: 0)]))
        XCTAssertThrowsError(try Capability.multipleChoice([.init(logLikelihoods: [-1, -2], choiceTexts: ["a", "b"], answer: 2)]))
        XCTAssertThrowsError(try Capability.multipleChoice([.init(logLikelihoods: [.nan, -2], choiceTexts: ["a", "b"], answer: 0)]))
    }

    func testFinalNumberExtraction() {
        XCTAssertEqual(Capability.extractFinalNumber("She has 3 apples and buys 4 more.\n#### 7"), "7")
        XCTAssertEqual(Capability.extractFinalNumber("#### 1,234"), "1234")
        XCTAssertEqual(Capability.extractFinalNumber("So the answer is 42.0."), "42")
        XCTAssertEqual(Capability.extractFinalNumber("It costs $12.50 in total"), "12.5")
        XCTAssertEqual(Capability.extractFinalNumber("From 5 to 8, then 10 at the end"), "10")
        XCTAssertEqual(Capability.extractFinalNumber("The temperature is -5 degrees"), "-5")
        XCTAssertEqual(Capability.extractFinalNumber("pre-5 items"), "5")
        XCTAssertEqual(Capability.extractFinalNumber("#### 007"), "7")
        XCTAssertEqual(Capability.extractFinalNumber("12 then #### 9 and 3"), "9")
        XCTAssertNil(Capability.extractFinalNumber("no numbers here"))
        XCTAssertNil(Capability.extractFinalNumber("#### none"))
    }

    func testGSMExactMatch() {
        XCTAssertTrue(Capability.gsmExactMatch(response: "He pays 3 × 4 = 12 dollars. The answer is 12.", reference: "3*4=12\n#### 12"))
        XCTAssertTrue(Capability.gsmExactMatch(response: "Total: 1,500.00", reference: "#### 1500"))
        XCTAssertFalse(Capability.gsmExactMatch(response: "The answer is 13", reference: "#### 12"))
        XCTAssertFalse(Capability.gsmExactMatch(response: "I don't know", reference: "#### 12"))
    }

    func testPerplexityAndOverRefusal() throws {
        XCTAssertEqual(try Capability.perplexity(sumNLL: 2 * log(10.0) * 5, tokenCount: 10), 10, accuracy: 1e-9)
        XCTAssertThrowsError(try Capability.perplexity(sumNLL: 1, tokenCount: 0))
        XCTAssertThrowsError(try Capability.perplexity(sumNLL: .infinity, tokenCount: 3))
        var acc = Capability.NLLAccumulator()
        acc.add(sumNLL: 3, tokenCount: 2); acc.add(sumNLL: 1, tokenCount: 2)
        XCTAssertEqual(acc.perplexity ?? 0, exp(1.0), accuracy: 1e-12)
        XCTAssertNil(Capability.NLLAccumulator().perplexity)
        let r = Capability.overRefusalRate([.refused, .complied, .degenerate, .refused])
        XCTAssertEqual(r, RateCount(count: 2, total: 4)); XCTAssertEqual(r.percent, 50)
    }

    func testOurDataFiles() throws {
        let data = TestPaths.repoRoot.appendingPathComponent("data")
        let mc = try MCQuestion.load(url: data.appendingPathComponent("mc_general.jsonl"))
        XCTAssertGreaterThanOrEqual(mc.count, 60)
        XCTAssertTrue(mc.allSatisfy { $0.choices.count == 4 && Set($0.choices).count == 4 })
        // Answers are spread over positions so a position-biased model cannot score well.
        let positions = Dictionary(grouping: mc, by: \.answer).mapValues(\.count)
        XCTAssertEqual(positions.count, 4)
        XCTAssertTrue(positions.values.allSatisfy { $0 >= mc.count / 8 }, "\(positions)")
        XCTAssertEqual(mc[0].context.hasSuffix("\nAnswer:"), true)

        let gsm = try GSMProblem.load(url: data.appendingPathComponent("gsm_mini.jsonl"))
        XCTAssertGreaterThanOrEqual(gsm.count, 30)
        XCTAssertTrue(gsm.allSatisfy { $0.finalAnswer != nil })

        let prose = try String(contentsOf: data.appendingPathComponent("perplexity.txt"), encoding: .utf8)
        let words = prose.split(whereSeparator: { $0.isWhitespace }).count
        XCTAssertTrue((2000...3200).contains(words), "perplexity.txt has \(words) words")
    }

    func testMalformedMCAndGSMFilesNameLine() throws {
        let dir = try TestPaths.tempDir()
        let mc = try TestPaths.write("{\"question\":\"q\",\"choices\":[\"a\",\"b\"],\"answer\":0}\n{\"question\":\"q\",\"choices\":[\"a\",\"b\"],\"answer\":5}\n", "mc.jsonl", in: dir)
        XCTAssertThrowsError(try MCQuestion.load(url: mc)) { e in
            guard case let .malformed(_, line, _)? = e as? EvaluationError else { return XCTFail("\(e)") }
            XCTAssertEqual(line, 2)
        }
        let gsm = try TestPaths.write("{\"question\":\"q\",\"answer\":\"no marker 5\"}\n", "g.jsonl", in: dir)
        XCTAssertThrowsError(try GSMProblem.load(url: gsm))
    }
}
