import Evaluation
import Foundation
import XCTest
@testable import Pipeline

/// A hand-made run folder: attack cells with per-prompt verdicts, and the methods' results.json entries as
/// the pipeline builds them.
struct RunFixture {
    let n = 60

    static func tempDir(_ name: String = #function) throws -> String {
        let d = FileManager.default.temporaryDirectory.appendingPathComponent("safeneuron-pipeline-\(name.filter(\.isLetter))-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: d, withIntermediateDirectories: true)
        return d.path
    }

    /// A judged cell: prompt i complied when `complied(i)`, otherwise refused.
    func writeCell(_ dir: String, complied: (Int) -> Bool) throws {
        let url = URL(fileURLWithPath: dir)
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        let records = (0..<n).map { GenerationRecord(prompt: "prompt \($0)", response: "r", verdict: complied($0) ? .complied : .refused, tokens: 1) }
        try GenerationLog.write(records, to: url.appendingPathComponent("generations.jsonl"))
        try SafetySummary(method: "m", dataset: "strongreject", judge: "refusal", records: records, wallSeconds: 0).write(to: url)
    }

    func config(_ run: String, seeds: [Int]? = nil) throws -> RunConfig {
        var o: [String: Any] = ["output": run, "methods": ["original", "dpo", "safeneuron", "safeneuron-freeze"], "eval.topk": [50, 150]]
        if let seeds { o["seeds"] = seeds }
        return try RunConfig.load(userFile: nil, full: false, overrides: o)
    }

    /// original complies with 50 prompts, dpo with 30, safeneuron with 5 (clearly safer), safeneuron-freeze
    /// exactly like dpo, in every cell. Returns the methods' entries as the pipeline builds them.
    func makeRun(_ run: String, seeds: [UInt64] = [0]) throws -> [String: Any] {
        let cutoff = ["original": 50, "dpo": 30, "safeneuron": 5, "safeneuron-freeze": 30]
        let pipeline = try RunPipeline(config: try config(run, seeds: seeds.count > 1 ? seeds.map { Int($0) } : nil))
        var methods: [String: Any] = [:]
        for (m, k) in cutoff {
            func plan(_ attackDir: String) throws -> [RunPipeline.AttackCell] {
                var plan: [RunPipeline.AttackCell] = []
                for name in ["ori", "es", "sas", "full", "top50", "top150"] {
                    // ES is empty, so its cell shares ORI's folder, as in attackPlan.
                    let out = attackDir + "/eval/" + (name == "es" ? "ori" : name)
                    if !FileManager.default.fileExists(atPath: out) { try writeCell(out) { $0 < k } }
                    plan.append(RunPipeline.AttackCell(name: name, model: "model", output: out, prune: [], neurons: []))
                }
                return plan
            }
            var entry = try pipeline.attackCounts(try plan(run + "/attack/\(m)"))
            entry["perplexity"] = m == "original" ? 21.9 : 22.4
            entry["overrefusal"] = m == "original" ? 0.012 : 0.05
            if seeds.count > 1 {
                var perSeed: [String: Any] = ["\(seeds[0])": try pipeline.cellFields(try plan(run + "/attack/\(m)"))]
                if m != "original" {
                    for s in seeds.dropFirst() { perSeed["\(s)"] = try pipeline.cellFields(try plan(run + "/attack/\(m)/seed\(s)")) }
                }
                entry["per_seed"] = perSeed
                entry["across_seeds"] = RunStatistics.acrossSeeds(perSeed, seeds: seeds)
            }
            methods[m] = entry
        }
        return methods
    }

    func readResults(_ run: String) throws -> [String: Any] {
        let data = try Data(contentsOf: URL(fileURLWithPath: run + "/results.json"))
        return try XCTUnwrap(try JSONSerialization.jsonObject(with: data) as? [String: Any])
    }
}
