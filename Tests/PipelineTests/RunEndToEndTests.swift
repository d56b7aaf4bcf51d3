import Foundation
import TinyModelSupport
import XCTest

/// `safeneuron run` end to end on the tiny fixture model with a tiny config, through the built binary: every
/// method, every attack family, capability and the report; then a second run that skips everything, and runs
/// resumed from the states a kill leaves behind.
final class RunEndToEndTests: XCTestCase {
    struct Result { var status: Int32; var stderr: String }

    func run(_ exe: URL, _ args: [String]) throws -> Result {
        let p = Process()
        p.executableURL = exe
        p.arguments = args
        let err = Pipe()
        p.standardError = err
        p.standardOutput = FileHandle.nullDevice
        try p.run()
        DispatchQueue.global().asyncAfter(deadline: .now() + 300) { if p.isRunning { p.terminate() } }
        let e = err.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        return Result(status: p.terminationStatus, stderr: String(decoding: e, as: UTF8.self))
    }

    func file(_ path: String) -> Data? { FileManager.default.contents(atPath: path) }

    /// A fresh folder holding the tiny model and `count` harmful and harmless prompt lines; kept when the test
    /// fails, for a look at the run folder.
    func tinyRunFolder(prompts count: Int) throws -> (dir: String, harmful: [String], harmless: [String]) {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("safeneuron-e2e-\(UUID().uuidString.prefix(8))").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        addTeardownBlock { [weak self] in
            if (self?.testRun?.failureCount ?? 0) == 0 { try? FileManager.default.removeItem(atPath: dir) }
        }
        try Data(try TinyModel.gguf()).write(to: URL(fileURLWithPath: dir + "/tiny.gguf"))
        let harmful = (1...count).map { "the harmful request number \($0) in a tin" }
        let harmless = (1...count).map { "a kind question \($0) about the tea" }
        try harmful.joined(separator: "\n").write(toFile: dir + "/harmful.txt", atomically: true, encoding: .utf8)
        try harmless.joined(separator: "\n").write(toFile: dir + "/harmless.txt", atomically: true, encoding: .utf8)
        return (dir, harmful, harmless)
    }

    func testTinyRunEndToEndSkipsWhenDoneAndResumes() throws {
        guard let exe = SafeNeuronBinary.url else { throw XCTSkip("safeneuron binary not built next to the tests") }
        let fm = FileManager.default
        let (dir, harmful, harmless) = try tinyRunFolder(prompts: 10)
        // A random tiny model writes no usable answers, so the pairs are the user's own (`pairs.file`), in TRL's
        // conversational format, labelled for the attribution's safety and utility sets.
        var pairs: [String] = []
        for i in 0..<8 {
            let safety = i % 2 == 0
            func turn(_ role: String, _ text: String) -> String { #"{"role": "\#(role)", "content": "\#(text)"}"# }
            let prompt = safety ? harmful[i] : harmless[i]
            let (chosen, rejected) = safety ? ("no, i can not help with the tin", "the tin is in the hat") : ("the tea is hot", "no, i can not")
            pairs.append(#"{"prompt": [\#(turn("user", prompt))], "chosen": [\#(turn("assistant", chosen))], "rejected": [\#(turn("assistant", rejected))], "kind": "\#(safety ? "safety" : "general")"}"#)
        }
        try pairs.joined(separator: "\n").write(toFile: dir + "/pairs.jsonl", atomically: true, encoding: .utf8)
        let runDir = dir + "/run"
        let config = """
        model: \(dir)/tiny.gguf
        output: \(runDir)
        methods: [original, dpo, sn-tune, safeneuron, safeneuron-freeze, safeneuron-dropout]
        identify: {harmful: \(dir)/harmful.txt, harmless: \(dir)/harmless.txt, max_prompts: 8, batch_size: 4}
        pairs: {file: \(dir)/pairs.jsonl}
        train: {epochs: 1, batch_size: 2, max_length: 48, warmup_steps: 0, save_every: 1, frozen_top_k: 6}
        eval: {max_tokens: 4, batch_size: 8, limit: 6, topk: [4], attribution_topk: [4], exclude_utility: [4], direction: auto,
               benchmark_limit: 3, gsm8k_limit: 2, gsm8k_tokens: 4, jailbreak_sample: 5, overrefusal_sample: 3,
               benchmarks: [arc_easy, arc_challenge, hellaswag, piqa, winogrande, openbookqa, mmlu, gsm8k]}
        """
        try config.write(toFile: dir + "/config.yaml", atomically: true, encoding: .utf8)
        let args = ["run", "--config", dir + "/config.yaml"]

        let first = try run(exe, args)
        XCTAssertEqual(first.status, 0, first.stderr)
        for out in ["results.json", "report.md", "report.html", "stages.json", "settings.json", "pairs.jsonl",
                    "original/neurons.json", "methods/dpo/model/model.safetensors", "methods/sn-tune/model/model.safetensors",
                    "methods/safeneuron/round1/model/model.safetensors", "methods/safeneuron-freeze/round1/model/model.safetensors",
                    "methods/safeneuron-dropout/round1/model/model.safetensors", "attack/original/direction.safetensors",
                    "capability/dpo/capability/summary.json", "capability/dpo/capability/benchmark_items.jsonl",
                    "capability/dpo/overrefusal/overrefusal_sources.json", "capability/dpo/overrefusal/rho-edgy/summary.json",
                    "attack/dpo/ori_past_tense/summary.json"] {
            XCTAssertTrue(fm.fileExists(atPath: runDir + "/" + out), "missing \(out)")
        }
        // Every attack cell results.json names was evaluated, and the attribution and direction families are there.
        let results = try XCTUnwrap(try JSONSerialization.jsonObject(with: XCTUnwrap(file(runDir + "/results.json"))) as? [String: Any])
        let methods = try XCTUnwrap(results["methods"] as? [String: Any])
        XCTAssertEqual(Set(methods.keys), ["original", "dpo", "sn-tune", "safeneuron", "safeneuron-freeze", "safeneuron-dropout"])
        for (name, entry) in methods {
            let cells = try XCTUnwrap((entry as? [String: Any])?["cells"] as? [String: Any], name)
            XCTAssertTrue(cells.keys.contains("ori") && cells.keys.contains("attr4_u4") && cells.keys.contains("direction")
                          && cells.keys.contains("ori_past_tense"), "\(name): \(cells.keys.sorted())")
            // The default run's standard benchmarks and over-refusal sources, for every method.
            let fields = try XCTUnwrap(entry as? [String: Any])
            let benchmarks = try XCTUnwrap(fields["benchmarks"] as? [String: Any], name)
            XCTAssertEqual(Set(benchmarks.keys), ["arc_easy", "arc_challenge", "hellaswag", "piqa", "winogrande", "openbookqa", "mmlu", "gsm8k"])
            XCTAssertEqual((benchmarks["piqa"] as? [String: Any])?["n"] as? Int, 3)
            XCTAssertEqual((benchmarks["gsm8k"] as? [String: Any])?["n"] as? Int, 2)
            let sources = try XCTUnwrap(fields["overrefusal_sources"] as? [String: Any], name)
            XCTAssertEqual(Set(sources.keys), ["harmless", "rho-edgy", "rho-paired-benign"])
            XCTAssertTrue(sources.values.allSatisfy { ($0 as? [String: Any])?["n"] as? Int == 3 })
            XCTAssertEqual((cells["ori_past_tense"] as? [String: Any])?["n"] as? Int, 5)
            for (cell, v) in cells {
                let evalDir = try XCTUnwrap((v as? [String: Any])?["eval_dir"] as? String, "\(name)/\(cell)")
                let path = evalDir.hasPrefix("/") ? evalDir : runDir + "/" + evalDir
                XCTAssertTrue(fm.fileExists(atPath: path + "/summary.json"), "\(name)/\(cell): \(path)")
            }
        }
        XCTAssertNotNil(results["comparisons_vs_dpo"])
        // Checkpoints go once their model folders are verified.
        let leftovers = (fm.enumerator(atPath: runDir)?.allObjects as? [String] ?? []).filter { $0.hasSuffix(".checkpoint") }
        XCTAssertEqual(leftovers, [], "checkpoints left behind")
        XCTAssertTrue(first.stderr.contains("holds"), "the run prints its folder size")

        // A second run finds every stage done.
        let stages = file(runDir + "/stages.json")
        let dpoModel = file(runDir + "/methods/dpo/model/model.safetensors")
        let second = try run(exe, args)
        XCTAssertEqual(second.status, 0, second.stderr)
        let started = second.stderr.split(separator: "\n").filter { $0.hasPrefix("run: ") && $0.hasSuffix(" …") }
        XCTAssertEqual(started, [], "stages rerun although done")
        XCTAssertEqual(file(runDir + "/stages.json"), stages)

        // The states a kill leaves: an attack cell cut off mid-generation (a torn last line, no summary), and a
        // method whose model folder never got written (its checkpoint already gone). The rerun finishes both, and
        // the retrained model is bit-identical (training is deterministic for a seed).
        let cell = runDir + "/attack/dpo/eval/ori"
        let summary = try XCTUnwrap(file(cell + "/summary.json"))
        let generations = try XCTUnwrap(file(cell + "/generations.jsonl"))
        let lines = generations.split(separator: UInt8(ascii: "\n"))
        var torn = Data(lines.prefix(lines.count / 2).joined(separator: [UInt8(ascii: "\n")]))
        torn.append(contentsOf: [UInt8(ascii: "\n")] + Array(lines[lines.count / 2].prefix(10)))
        try torn.write(to: URL(fileURLWithPath: cell + "/generations.jsonl"))
        try fm.removeItem(atPath: cell + "/summary.json")
        try fm.removeItem(atPath: runDir + "/methods/dpo/model")
        try fm.removeItem(atPath: runDir + "/results.json")
        let third = try run(exe, args)
        XCTAssertEqual(third.status, 0, third.stderr)
        XCTAssertEqual(file(runDir + "/methods/dpo/model/model.safetensors"), dpoModel, "retrained dpo differs")
        XCTAssertEqual(file(cell + "/generations.jsonl"), generations)
        func verdicts(_ d: Data) throws -> [String: Any] {
            var o = try XCTUnwrap(try JSONSerialization.jsonObject(with: d) as? [String: Any])
            for k in ["wall_seconds", "created_at", "tokens_per_second", "timing"] { o[k] = nil }
            return o
        }
        XCTAssertEqual(try verdicts(XCTUnwrap(file(cell + "/summary.json"))) as NSDictionary, try verdicts(summary) as NSDictionary)
        XCTAssertTrue(fm.fileExists(atPath: runDir + "/results.json"))
    }

    /// The other branches of the stage arguments, each parsed by its command's real parser because the stage runs:
    /// on-policy pair generation, two rounds with the attribution-ranked frozen set re-identified each round, a
    /// fixed direction layer, no capability stage, and two training seeds reported per seed and across seeds.
    func testTinyRunWithSeedsRoundsAndAttributionFreeze() throws {
        guard let exe = SafeNeuronBinary.url else { throw XCTSkip("safeneuron binary not built next to the tests") }
        let fm = FileManager.default
        let (dir, harmful, harmless) = try tinyRunFolder(prompts: 12)
        let runDir = dir + "/run"
        let config = """
        model: \(dir)/tiny.gguf
        output: \(runDir)
        methods: [original, dpo, safeneuron, safeneuron-freeze]
        rounds: 2
        seeds: [0, 1]
        identify: {harmful: \(dir)/harmful.txt, harmless: \(dir)/harmless.txt, max_prompts: 8, batch_size: 4}
        pairs: {harmful: \(dir)/harmful.txt, harmless: \(dir)/harmless.txt, count: 8, max_tokens: 4, rejected_prune_k: 4}
        train: {epochs: 1, batch_size: 2, max_length: 48, warmup_steps: 0, save_every: 1, frozen_top_k: 6, frozen_score: attribution}
        eval: {max_tokens: 4, batch_size: 8, limit: 6, topk: [4], attribution_topk: [4], exclude_utility: [4], direction: 1, capability: false}
        """
        try config.write(toFile: dir + "/config.yaml", atomically: true, encoding: .utf8)
        // A random model answers nothing a pair can use, so on-policy pair generation runs (its arguments
        // parsed) and stops with its own error, before any training.
        let onPolicy = try run(exe, ["run", "--config", dir + "/config.yaml"])
        XCTAssertNotEqual(onPolicy.status, 0)
        XCTAssertTrue(onPolicy.stderr.contains("no preference pairs were kept"), onPolicy.stderr)
        XCTAssertFalse(fm.fileExists(atPath: runDir + "/pairs.jsonl"))
        // The rest runs on the user's pairs.
        var pairs: [String] = []
        for i in 0..<8 {
            let prompt = i % 2 == 0 ? harmful[i] : harmless[i]
            pairs.append(#"{"prompt": "\#(prompt)", "chosen": "no, i can not help", "rejected": "the tin is in the hat", "kind": "\#(i % 2 == 0 ? "safety" : "general")"}"#)
        }
        try pairs.joined(separator: "\n").write(toFile: dir + "/pairs.jsonl", atomically: true, encoding: .utf8)
        try config.replacingOccurrences(of: "pairs: {harmful", with: "pairs: {file: \(dir)/pairs.jsonl, harmful")
            .write(toFile: dir + "/config.yaml", atomically: true, encoding: .utf8)
        let first = try run(exe, ["run", "--config", dir + "/config.yaml"])
        XCTAssertEqual(first.status, 0, first.stderr)
        for out in ["pairs.jsonl", "methods/safeneuron/round2/model/model.safetensors",
                    "methods/safeneuron-freeze/round2/model/model.safetensors", "methods/dpo/seed1/model/model.safetensors",
                    "report.md", "report.html"] {
            XCTAssertTrue(fm.fileExists(atPath: runDir + "/" + out), "missing \(out)")
        }
        XCTAssertFalse(fm.fileExists(atPath: runDir + "/capability"), "capability: false still measured capability")
        let results = try XCTUnwrap(try JSONSerialization.jsonObject(with: XCTUnwrap(file(runDir + "/results.json"))) as? [String: Any])
        let dpo = try XCTUnwrap((results["methods"] as? [String: Any])?["dpo"] as? [String: Any])
        let perSeed = try XCTUnwrap(dpo["per_seed"] as? [String: Any])
        XCTAssertEqual(Set(perSeed.keys), ["0", "1"])
        XCTAssertNotNil(dpo["across_seeds"])
    }
}
