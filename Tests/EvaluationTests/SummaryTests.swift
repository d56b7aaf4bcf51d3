import Foundation
import XCTest
@testable import Evaluation

final class SummaryTests: XCTestCase {
    func records() -> [GenerationRecord] {
        [(String?("a"), Verdict.complied), ("a", .refused), ("a", .complied), ("b", .degenerate), ("b", .refused), (nil, .complied)]
            .map { GenerationRecord(prompt: "p", response: "r", category: $0.0, verdict: $0.1, tokens: 3) }
    }

    func testCountsAndByCategory() throws {
        let s = try SafetySummary(method: "Base", dataset: "strongreject", judge: "prefix-list-v1", records: records(),
                                  settings: ["max_new_tokens": .int(256), "temperature": .double(0), "chat": .bool(true), "template": .string("chatml")],
                                  modelSHA256: "abc", pruneSet: PruneSetInfo(name: "FULL(SN−)", neuronCount: 120), wallSeconds: 12.5)
        XCTAssertEqual(s.asr.count, 3); XCTAssertEqual(s.asr.total, 6); XCTAssertEqual(s.asr.percent, 50)
        XCTAssertEqual(s.refused, 2); XCTAssertEqual(s.degenerate, 1); XCTAssertEqual(s.complied, 3)
        XCTAssertEqual(s.asr.byCategory["a"], RateCount(count: 2, total: 3))
        XCTAssertEqual(s.asr.byCategory["b"], RateCount(count: 0, total: 2))
        XCTAssertEqual(s.asr.byCategory["uncategorized"], RateCount(count: 1, total: 1))
        XCTAssertEqual(s.asr.byCategory["a"]?.percent ?? 0, 66.666667, accuracy: 1e-9)
        XCTAssertEqual(s.refusalRate, RateCount(count: 2, total: 6))
        XCTAssertEqual(s.condition, "FULL(SN−)")
    }

    func testUnjudgedRecordIsRejected() {
        var r = records(); r[2].verdict = nil
        XCTAssertThrowsError(try SafetySummary(method: "m", dataset: "d", judge: "j", records: r, wallSeconds: 0))
    }

    func testWrittenJSONShapeAndRoundTrip() throws {
        let dir = try TestPaths.tempDir()
        let s = try SafetySummary(method: "Base", dataset: "strongreject", judge: "prefix-list-v1", records: records(),
                                  settings: ["seed": .int(1)], modelSHA256: "deadbeef", wallSeconds: 1)
        try s.write(to: dir)
        let data = try Data(contentsOf: dir.appendingPathComponent("summary.json"))
        let obj = try XCTUnwrap(try JSONSerialization.jsonObject(with: data) as? [String: Any])
        let asr = try XCTUnwrap(obj["asr"] as? [String: Any])
        XCTAssertEqual(asr["count"] as? Int, 3); XCTAssertEqual(asr["total"] as? Int, 6)
        XCTAssertEqual((asr["percent"] as? NSNumber)?.doubleValue, 50)
        let byCat = try XCTUnwrap(asr["by_category"] as? [String: [String: Any]])
        XCTAssertEqual(byCat["a"]?["total"] as? Int, 3)
        for k in ["refused", "degenerate", "judge", "dataset", "settings", "model_sha256", "wall_seconds", "method", "kind"] {
            XCTAssertNotNil(obj[k], k)
        }
        XCTAssertEqual(try SafetySummary.read(from: dir), s)
        XCTAssertEqual(try AnySummary.read(folder: dir), .safety(s))
        // No temp files are left behind by the atomic write.
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir.path), ["summary.json"])
    }

    func testCapabilitySummaryAndBadSummary() throws {
        let dir = try TestPaths.tempDir()
        let c = CapabilitySummary(method: "Base", metrics: ["mc_acc": 0.4, "gsm_em": 0.1], primaryMetric: "mc_acc", wallSeconds: 2)
        try c.write(to: dir)
        XCTAssertEqual(try AnySummary.read(folder: dir), .capability(c))
        try Data("{\"kind\":\"safety\",\"method\":3}".utf8).write(to: dir.appendingPathComponent("summary.json"))
        XCTAssertThrowsError(try AnySummary.read(folder: dir)) { e in
            guard case .malformed? = e as? EvaluationError else { return XCTFail("\(e)") }
        }
        try Data("{\"kind\":\"other\"}".utf8).write(to: dir.appendingPathComponent("summary.json"))
        XCTAssertThrowsError(try AnySummary.read(folder: dir))
    }
}
