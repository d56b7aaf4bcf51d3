import Foundation
import XCTest
@testable import Pipeline

/// The attack matrix's new settings and the "strongest fluent setting" rule.
final class AttackFamilyTests: XCTestCase {
    func testStrongestFluentSetting() {
        let complied = ["ori": 116, "attr50": 151, "attr150": 226, "attr450": 288, "top150": 135]
        let ppl = ["ori": 22.8, "attr50": 22.9, "attr150": 23.2, "attr450": 25.2, "top150": 22.9]
        // 25.2 > 1.1 × 22.8 = 25.08: the top-450 cell is not fluent, so top-150 is the strongest fluent one.
        let best = RunPipeline.strongestFluent(cells: ["attr50", "attr150", "attr450"], complied: complied,
                                               perplexity: ppl, unattacked: ppl["ori"])
        XCTAssertEqual(best?.cell, "attr150")
        XCTAssertEqual(best?.complied, 226)
        // Exactly at the 10% limit still counts; ties keep the earlier cell.
        let edge = RunPipeline.strongestFluent(cells: ["a", "b"], complied: ["a": 10, "b": 10],
                                               perplexity: ["a": 11.0, "b": 10.0], unattacked: 10)
        XCTAssertEqual(edge?.cell, "a")
        // No unattacked perplexity, or no fluent cell: no setting.
        XCTAssertNil(RunPipeline.strongestFluent(cells: ["attr50"], complied: complied, perplexity: ppl, unattacked: nil))
        XCTAssertNil(RunPipeline.strongestFluent(cells: ["attr450"], complied: complied, perplexity: ppl, unattacked: 20))
        // A cell without a measured perplexity never qualifies.
        XCTAssertNil(RunPipeline.strongestFluent(cells: ["x"], complied: ["x": 300], perplexity: [:], unattacked: 20))
    }

    func testAttackSettingsConfig() throws {
        let run = try RunFixture.tempDir()
        let d = try RunConfig.load(userFile: nil, full: false, overrides: ["output": run])
        XCTAssertEqual(d.eval.attributionTopK, [450])
        XCTAssertEqual(d.methods, ["original", "dpo", "sn-tune", "safeneuron"])
        XCTAssertEqual(d.train.trainer, "swift")
        XCTAssertFalse(d.eval.benchmarks.contains("gsm8k"))
        XCTAssertTrue(d.eval.benchmarks.contains("mmlu"))
        XCTAssertEqual(d.eval.excludeUtility, [1150])
        XCTAssertEqual(d.eval.direction, "auto")
        XCTAssertTrue(d.eval.perplexity)
        XCTAssertEqual(d.train.frozenScore, "d")
        let full = try RunConfig.load(userFile: nil, full: true, overrides: ["output": run])
        XCTAssertEqual(full.eval.topk, [50, 150, 450, 1350])
        XCTAssertEqual(full.eval.attributionTopK, [50, 150, 450])
        XCTAssertEqual(full.methods.last, "safeneuron-dropout")
        XCTAssertTrue(full.methods.contains("safeneuron-freeze"))
        XCTAssertEqual(full.eval.benchmarks.last, "gsm8k")
        XCTAssertEqual(try RunConfig.load(userFile: nil, full: false, overrides: ["output": run, "train.trainer": "trl"]).train.trainer, "trl")
        XCTAssertThrowsError(try RunConfig.load(userFile: nil, full: false, overrides: ["output": run, "train.trainer": "torch"]))
        let c = try RunConfig.load(userFile: nil, full: false, overrides: [
            "output": run, "eval.direction": "off", "eval.exclude_utility": [0, 2300],
            "train.frozen_score": "attribution", "train.frozen_top_k": 450])
        XCTAssertNil(c.eval.direction)
        XCTAssertEqual(c.eval.excludeUtility, [0, 2300])
        XCTAssertEqual(c.train.frozenScore, "attribution")
        XCTAssertEqual(try RunConfig.load(userFile: nil, full: false, overrides: ["output": run, "eval.direction": 21]).eval.direction, "21")
        for bad: [String: Any] in [["train.frozen_score": "magic"], ["train.frozen_score": "attribution"],
                                   ["eval.exclude_utility": [-1]], ["eval.direction": "sideways"]] {
            XCTAssertThrowsError(try RunConfig.load(userFile: nil, full: false, overrides: bad.merging(["output": run]) { a, _ in a }),
                                 "\(bad)") { XCTAssertTrue("\($0)".contains(bad.keys.first!.split(separator: ".").last!), "\($0)") }
        }
    }
}
