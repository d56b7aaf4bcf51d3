import Evaluation
import Foundation
import XCTest
@testable import Pipeline

/// `seeds:` / `run --seeds`: the configuration and the report's mean ± sd across training seeds.
final class RunSeedsTests: XCTestCase {
    let f = RunFixture()

    func testMultiSeedRunReportsMeanAndSD() throws {
        let run = try RunFixture.tempDir()
        let methods = try f.makeRun(run, seeds: [0, 1, 2])
        let cfg = try f.config(run, seeds: [0, 1, 2])
        XCTAssertEqual(cfg.seeds, [0, 1, 2]); XCTAssertEqual(cfg.seed, 0)
        try RunReport.write(config: cfg, runDir: run, methods: methods, stageTimes: [], wallSeconds: 1)
        let r = try f.readResults(run)
        XCTAssertEqual(r["seeds"] as? [Int], [0, 1, 2])
        let dpo = try XCTUnwrap((r["methods"] as? [String: Any])?["dpo"] as? [String: Any])
        let perSeed = try XCTUnwrap(dpo["per_seed"] as? [String: Any])
        XCTAssertEqual(Set(perSeed.keys), ["0", "1", "2"])
        XCTAssertEqual(((perSeed["2"] as? [String: Any])?["ori"] as? [String: Any])?["complied"] as? Int, 30)
        let across = try XCTUnwrap((dpo["across_seeds"] as? [String: Any])?["ori"] as? [String: Any])
        XCTAssertEqual(across["complied"] as? [Int], [30, 30, 30]); XCTAssertEqual(across["sd"] as? Double, 0)
        let original = try XCTUnwrap((r["methods"] as? [String: Any])?["original"] as? [String: Any])
        XCTAssertEqual(Set(((original["per_seed"] as? [String: Any]) ?? [:]).keys), ["0"])
        let md = try String(contentsOfFile: run + "/report.md", encoding: .utf8)
        XCTAssertTrue(md.contains("## Across training seeds"), md)
        XCTAssertTrue(md.contains("| dpo | 30.0 ± 0.0 |"), md)
        XCTAssertTrue(md.contains("| original | 50 (1 seed) |"), md)
    }

    func testSingleSeedRunKeepsTheSingleSeedShape() throws {
        let run = try RunFixture.tempDir()
        try RunReport.write(config: try f.config(run), runDir: run, methods: try f.makeRun(run), stageTimes: [], wallSeconds: 1)
        let r = try f.readResults(run)
        XCTAssertEqual(r["seeds"] as? [Int], [0])
        let dpo = try XCTUnwrap((r["methods"] as? [String: Any])?["dpo"] as? [String: Any])
        XCTAssertNil(dpo["per_seed"]); XCTAssertNil(dpo["across_seeds"])
        XCTAssertFalse(FileManager.default.fileExists(atPath: run + "/attack/dpo/seed0"))
    }

    func testSeedsConfig() throws {
        let run = try RunFixture.tempDir()
        let base = try f.config(run)
        XCTAssertEqual(base.seeds, [base.seed])
        let c = try RunConfig.load(userFile: nil, full: false, overrides: ["output": run, "seeds": [3, 4]])
        XCTAssertEqual(c.seed, 3); XCTAssertEqual(c.seeds, [3, 4])
        XCTAssertEqual(c.resolved["seed"] as? Int, 3)
        XCTAssertThrowsError(try RunConfig.load(userFile: nil, full: false, overrides: ["output": run, "seeds": [1, 1]]))
        XCTAssertThrowsError(try RunConfig.load(userFile: nil, full: false, overrides: ["output": run, "seeds": [Int]()]))
    }
}
