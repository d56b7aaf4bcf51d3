import XCTest
@testable import Evaluation

final class EvaluatorLogicTests: XCTestCase {
    func testPlanSortsByLengthAndCoversEveryPromptOnce() {
        let lengths = [5, 3, 9, 3, 1, 7, 5]
        let b = GenerationPlan.batches(lengths: lengths, batchSize: 3)
        XCTAssertEqual(b, [[4, 1, 3], [0, 6, 5], [2]])
        XCTAssertEqual(b.flatMap { $0 }.sorted(), Array(lengths.indices))
        XCTAssertEqual(GenerationPlan.batches(lengths: [], batchSize: 4), [])
        XCTAssertEqual(GenerationPlan.batches(lengths: [2, 1], batchSize: 0), [[1], [0]])
    }

    func testMatchHandlesDuplicatesAndStrangers() {
        let prompts = [PromptRecord(prompt: "a", category: "x"), PromptRecord(prompt: "b"),
                       PromptRecord(prompt: "a", category: "x"), PromptRecord(prompt: "a", category: "y")]
        let existing = [GenerationRecord(prompt: "a", response: "r1", category: "x", tokens: 1),
                        GenerationRecord(prompt: "zzz", response: "?", tokens: 1),
                        GenerationRecord(prompt: "a", response: "r2", category: "x", tokens: 2),
                        GenerationRecord(prompt: "a", response: "r3", category: "x", tokens: 3)]
        let m = GenerationPlan.match(prompts: prompts, existing: existing)
        XCTAssertEqual(m[0]?.response, "r1")
        XCTAssertEqual(m[2]?.response, "r2")
        XCTAssertNil(m[1])
        XCTAssertNil(m[3])   // different category
        XCTAssertEqual(m.count, 2)
    }

    /// A killed run leaves a torn last line; the appender drops it and the matcher resumes after the
    /// complete records.
    func testResumeAfterTornWrite() throws {
        let dir = try TestPaths.tempDir()
        let log = dir.appendingPathComponent("generations.jsonl")
        let a = try GenerationAppender(url: log, resume: true)
        try a.append(GenerationRecord(prompt: "p0", response: "r0", verdict: .refused, tokens: 3))
        try a.append(GenerationRecord(prompt: "p1", response: "r1", verdict: .complied, tokens: 4))
        try a.close()
        let h = try FileHandle(forWritingTo: log)
        try h.seekToEnd()
        try h.write(contentsOf: Data("{\"prompt\":\"p2\",\"resp".utf8))
        try h.close()
        let b = try GenerationAppender(url: log, resume: true)
        XCTAssertEqual(b.existing.map(\.prompt), ["p0", "p1"])
        let prompts = (0..<3).map { PromptRecord(prompt: "p\($0)") }
        let done = GenerationPlan.match(prompts: prompts, existing: b.existing)
        XCTAssertEqual(Set(done.keys), [0, 1])
        try b.append(GenerationRecord(prompt: "p2", response: "r2", tokens: 1))
        try b.close()
        XCTAssertEqual(try GenerationLog.load(log).records.map(\.response), ["r0", "r1", "r2"])
    }

    func testSummaryIsDeterministicApartFromTime() throws {
        let recs = [GenerationRecord(prompt: "a", response: "x", category: "c1", verdict: .complied, tokens: 1),
                    GenerationRecord(prompt: "b", response: "y", category: "c2", verdict: .refused, tokens: 1)]
        var s1 = try SafetySummary(method: "m", dataset: "d", judge: "j", records: recs, wallSeconds: 1, createdAt: Date(timeIntervalSince1970: 0))
        let s2 = try SafetySummary(method: "m", dataset: "d", judge: "j", records: recs, wallSeconds: 9, createdAt: Date())
        XCTAssertNotEqual(s1, s2)
        s1.wallSeconds = s2.wallSeconds; s1.createdAt = s2.createdAt
        XCTAssertEqual(s1, s2)
    }

    func testExpandResultFolders() throws {
        let dir = try TestPaths.tempDir()
        let all = dir.appendingPathComponent("all")
        for sub in ["safety", "capability"] {
            let f = all.appendingPathComponent(sub)
            let recs = [GenerationRecord(prompt: "a", response: "x", verdict: .complied, tokens: 1)]
            try SafetySummary(method: "m", dataset: sub, judge: "j", records: recs, wallSeconds: 1).write(to: f)
        }
        let single = all.appendingPathComponent("safety")
        XCTAssertEqual(try Report.expandResultFolders([all]).map(\.lastPathComponent), ["capability", "safety"])
        XCTAssertEqual(try Report.expandResultFolders([single]).map(\.lastPathComponent), ["safety"])
        XCTAssertThrowsError(try Report.expandResultFolders([dir.appendingPathComponent("nothing")]))
    }
}

/// A scorer with a fixed NLL, to check the capability plumbing without a model.
private struct FixedNLLScorer: CapabilityScoring {
    var nll: (Double, Int)
    func continuationLogLikelihoods(_ pairs: [(context: String, continuation: String)]) throws -> [Double] {
        XCTFail("no benchmark was asked for"); return []
    }
    func textNLL(_ text: String, window: Int) throws -> (sumNLL: Double, tokens: Int) { nll }
    func complete(_ prompts: [String], maxNewTokens: Int, stopSequences: [String]) throws -> [String] { XCTFail("no generation was asked for"); return [] }
}

final class CapabilitySuiteTests: XCTestCase {
    func testPerplexityAloneIsTheSummarysPrimaryMetric() throws {
        let dir = try TestPaths.tempDir()
        var suite = CapabilitySuite(names: [], shots: 0, limit: nil, seed: 0, folder: dir)
        suite.perplexityFile = try TestPaths.write("text", "prose.txt", in: dir)
        let s = try suite.run(FixedNLLScorer(nll: (log(8.0) * 100, 100)), method: "stub", output: dir)
        XCTAssertEqual(s.primaryMetric, "perplexity")
        XCTAssertEqual(s.metrics["perplexity"]!, 8, accuracy: 1e-9)
        XCTAssertEqual(s.metrics["perplexity_tokens"], 100)
        XCTAssertNil(s.benchmarks)
        guard case .capability(let back) = try AnySummary.read(folder: dir) else { return XCTFail("not a capability summary") }
        XCTAssertEqual(back.metrics["perplexity"]!, 8, accuracy: 1e-9)
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir.appendingPathComponent("benchmark_items.jsonl").path))
    }
}

final class RunIdentityTests: XCTestCase {
    func testResumeRefusesDifferentSettings() throws {
        let dir = try TestPaths.tempDir()
        let a = ["max_tokens": "64", "dataset": "d"]
        try SafetyEvaluator.checkRunIdentity(a, folder: dir)
        XCTAssertNoThrow(try SafetyEvaluator.checkRunIdentity(a, folder: dir))
        XCTAssertThrowsError(try SafetyEvaluator.checkRunIdentity(["max_tokens": "256", "dataset": "d"], folder: dir)) { e in
            XCTAssertTrue(String(describing: e).contains("max_tokens"))
        }
    }
}
