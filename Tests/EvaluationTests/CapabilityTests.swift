import Foundation
import XCTest
@testable import Evaluation

final class CapabilityTests: XCTestCase {
    func testArgmaxTiesPickFirst() {
        XCTAssertEqual(Capability.argmax([1, 3, 3]), 1)
        XCTAssertNil(Capability.argmax([]))
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

    func testPerplexityText() throws {
        let data = TestPaths.repoRoot.appendingPathComponent("data")
        let prose = try String(contentsOf: data.appendingPathComponent("perplexity.txt"), encoding: .utf8)
        let words = prose.split(whereSeparator: { $0.isWhitespace }).count
        XCTAssertTrue((2000...3200).contains(words), "perplexity.txt has \(words) words")
    }
}
