import Evaluation
import Foundation
import ModelFiles
import Runtime
import SafetyNeurons
import Transformer

/// `safeneuron run`: identification → on-policy pairs → every method's training (SafeNeuron variants in
/// rounds) → the white-box pruning attack on every final model → capability → results.json and the report.
///
/// Each stage writes into the run folder and is skipped when its outputs exist, so a rerun resumes a
/// killed run and redoes no finished work (the child commands resume their own partial work too).
public final class RunPipeline {
    public let config: RunConfig
    let dir: String
    let runner: StageRunner

    public init(config: RunConfig) throws {
        self.config = config
        self.dir = config.output
        self.runner = try StageRunner(runDir: config.output)
    }

    func path(_ rel: String) -> String { dir + "/" + rel }

    public func run() throws {
        let started = Date()
        try saveSettings()
        let c = config
        let identifyInputs = try prepareIdentificationPrompts()
        let maxK = c.eval.topk.max() ?? 0

        // 1. The original model's safety neurons (used for training and as the attack on `original`).
        try identify(model: c.model, into: path("original"), prompts: identifyInputs, topK: maxK, ablate: nil)

        // 2. On-policy preference pairs.
        try runner.stage("pairs", outputs: [path("pairs.jsonl")]) {
            var args = ["pairs", "--model", c.model, "--output", path("pairs.jsonl"), "--count", "\(c.pairs.count)",
                        "--safety-fraction", "\(c.pairs.safetyFraction)", "--max-tokens", "\(c.pairs.maxTokens)",
                        "--harmless", c.pairs.harmless, "--seed", "\(c.seed)", "--system-prompt", c.pairs.systemPrompt,
                        "--batch-size", "\(c.eval.batchSize)"]
            if let h = c.pairs.harmful { args += ["--harmful", h] }
            if c.pairs.rejectedPruneK > 0 {
                let topFile = try topKFile(from: path("original"), k: c.pairs.rejectedPruneK)
                args += ["--neurons", topFile, "--neuron-set", "topk"]
            }
            try StageRunner.runSelf(args)
        }

        // 3. Every method's final model.
        var finals: [String: String] = [:]
        var rounds: [String: [[String: Any]]] = [:]
        for method in c.methods {
            let (model, info) = try train(method: method, identifyInputs: identifyInputs)
            finals[method] = model
            rounds[method] = info
        }
        // 3b. Further training seeds: the same pairs and frozen sets, only the training seed differs.
        var seedFinals: [UInt64: [String: String]] = [:]
        for s in c.seeds.dropFirst() {
            for method in c.methods where method != "original" {
                seedFinals[s, default: [:]][method] = try train(method: method, identifyInputs: identifyInputs, seed: s).0
            }
        }

        // 4. The attack matrix: every final model's own neurons, then all cells of all methods in one
        // process (the judge's fluency model computes each prompt's keys/values once for the whole run).
        var plans: [String: [AttackCell]] = [:]
        for method in c.methods {
            guard let model = finals[method] else { continue }
            let attackDir = path("attack/\(method)")
            if method == "original" {
                try FileManager.default.createDirectory(atPath: attackDir, withIntermediateDirectories: true)
                for f in ["neurons.json", "stats.safetensors"] where !FileManager.default.fileExists(atPath: attackDir + "/" + f) {
                    try FileManager.default.copyItem(atPath: path("original/\(f)"), toPath: attackDir + "/" + f)
                }
            } else {
                try identify(model: model, into: attackDir, prompts: identifyInputs, topK: maxK, ablate: nil)
            }
            plans[method] = try attackPlan(model: model, attackDir: attackDir)
        }
        // Every further seed's models are attacked with their own neurons, in the same eval process.
        var seedPlans: [UInt64: [String: [AttackCell]]] = [:]
        for s in c.seeds.dropFirst() {
            for method in c.methods {
                guard let model = seedFinals[s]?[method] else { continue }
                let attackDir = path("attack/\(method)/seed\(s)")
                try identify(model: model, into: attackDir, prompts: identifyInputs, topK: maxK, ablate: nil)
                seedPlans[s, default: [:]][method] = try attackPlan(model: model, attackDir: attackDir)
            }
        }
        let seedCells = c.seeds.dropFirst().flatMap { s in c.methods.compactMap { seedPlans[s]?[$0] }.flatMap { $0 } }
        try evaluate(c.methods.compactMap { plans[$0] }.flatMap { $0 } + seedCells,
                     label: "eval attack (\(plans.count) methods\(c.seeds.count > 1 ? " × \(c.seeds.count) seeds" : ""))")

        // 5. Capability, and each method's results.
        var results: [String: Any] = [:]
        for method in c.methods {
            guard let model = finals[method], let plan = plans[method] else { continue }
            let attackDir = path("attack/\(method)")
            var entry = try attackCounts(plan)
            let capability = c.eval.capability ? try self.capability(method: method, model: model) : [:]
            for (k, v) in capability { entry[k] = v }
            entry["rounds"] = rounds[method] ?? []
            entry["model_path"] = model
            let nf = try NeuronsFile.read(from: URL(fileURLWithPath: attackDir + "/neurons.json"))
            entry["neurons"] = ["es": nf.counts.es, "sas": nf.counts.sas, "union": nf.counts.union]
            if c.seeds.count > 1 {
                // Each seed's cells (`original` is not trained: the base seed only) and mean ± sd per cell.
                var perSeed: [String: Any] = ["\(c.seed)": try cellFields(plan)]
                for s in c.seeds.dropFirst() { if let p = seedPlans[s]?[method] { perSeed["\(s)"] = try cellFields(p) } }
                entry["per_seed"] = perSeed
                entry["across_seeds"] = RunStatistics.acrossSeeds(perSeed, seeds: c.seeds)
            }
            results[method] = entry
        }

        // Stages finished by earlier (resumed) invocations count too: the total is the sum of all stage times.
        let wall = max(Date().timeIntervalSince(started),
                       runner.stageTimes.reduce(0) { $0 + (($1["seconds"] as? Double) ?? 0) })
        try RunReport.write(config: config, runDir: dir, methods: results, stageTimes: runner.stageTimes, wallSeconds: wall)
        Progress.note("run: results → \(path("results.json")), report → \(path("report.md")), \(path("report.html"))")
    }

    // MARK: Stages

    func saveSettings() throws {
        let data = try JSONSerialization.data(withJSONObject: config.resolved, options: [.prettyPrinted, .sortedKeys])
        try AtomicFile.write(data, to: path("settings.json"))
    }

    /// Seeded samples of the identification prompts, written once so every model is probed with the same ones.
    func prepareIdentificationPrompts() throws -> (harmful: String, harmless: String) {
        let harmfulOut = path("prompts/identify_harmful.jsonl"), harmlessOut = path("prompts/identify_harmless.jsonl")
        try runner.stage("prompts", outputs: [harmfulOut, harmlessOut]) {
            let root = DataPaths.root
            let harmful: [String]
            if let h = config.identify.harmful { harmful = try loadPrompts(h, root: root).map(\.prompt) } else {
                harmful = try BuiltinDataset.defaultHarmful(root: root).map(\.prompt)
            }
            let harmless = try loadPrompts(config.identify.harmless, root: root).map(\.prompt)
            var rng = SeededGenerator(seed: config.seed, stream: 3)
            let h = Array(harmful.shuffled(using: &rng).prefix(config.identify.maxPrompts))
            let s = Array(harmless.shuffled(using: &rng).prefix(config.identify.maxPrompts))
            try JSONLines.write(h.map { ["prompt": $0] }, to: harmfulOut)
            try JSONLines.write(s.map { ["prompt": $0] }, to: harmlessOut)
        }
        return (harmfulOut, harmlessOut)
    }

    func identify(model: String, into folder: String, prompts: (harmful: String, harmless: String), topK: Int, ablate: String?) throws {
        let out = folder + "/neurons.json", stats = folder + "/stats.safetensors"
        try runner.command("identify \(folder.replacingOccurrences(of: dir + "/", with: ""))", outputs: [out, stats],
                           ["identify", "--model", model, "--harmful", prompts.harmful, "--harmless", prompts.harmless,
                            "--output", out, "--stats", stats, "--report", folder + "/report",
                            "--tau-es", "\(config.identify.tauES)", "--tau-sas", "\(config.identify.tauSAS)",
                            "--pool", config.identify.pool, "--top-k", "\(topK)", "--batch-size", "\(config.identify.batchSize)"])
    }

    /// A neurons file whose `topk` set holds the `k` neurons with the largest d (from the saved statistics).
    func topKFile(from folder: String, k: Int) throws -> String {
        let out = folder + "/neurons_top\(k).json"
        if FileManager.default.fileExists(atPath: out) { return out }
        var file = try NeuronsFile.read(from: URL(fileURLWithPath: folder + "/neurons.json"))
        let stats = try SafetensorsFile(path: folder + "/stats.safetensors")
        let d = try stats.floats("d")
        let I = file.intermediateSize
        let order = d.indices.filter { d[$0].isFinite }.sorted { d[$0] != d[$1] ? d[$0] > d[$1] : $0 < $1 }
        let chosen = order.prefix(k).sorted().map { [$0 / I, $0 % I] }
        file.sets.topk = chosen
        file.counts.topk = chosen.count
        file.topK = k
        try file.write(to: URL(fileURLWithPath: out))
        return out
    }

    /// Trains `method` (all rounds) and returns its final model path and per-round neuron counts.
    /// `seed` (default the base seed) is the training seed; a further seed trains under `methods/<method>/seed<s>/`.
    func train(method: String, identifyInputs: (harmful: String, harmless: String), seed: UInt64? = nil) throws -> (String, [[String: Any]]) {
        let c = config
        if method == "original" { return (c.model, []) }
        let seed = seed ?? c.seed
        let base = path("methods/\(method)") + (seed == c.seed ? "" : "/seed\(seed)")
        func align(model: String, output: String, extra: [String]) throws {
            try runner.command("align \(method) → \(output.replacingOccurrences(of: dir + "/", with: ""))", outputs: [output + "/model.safetensors"],
                ["align", "--model", model, "--pairs", path("pairs.jsonl"), "--output", output,
                 "--beta", "\(c.train.beta)", "--loss", c.train.loss, "--rpo-alpha", "\(c.train.rpoAlpha)",
                 "--lr", "\(c.train.learningRate)", "--weight-decay", "\(c.train.weightDecay)", "--schedule", c.train.schedule,
                 "--warmup-steps", "\(c.train.warmupSteps)", "--epochs", "\(c.train.epochs)", "--batch-size", "\(c.train.batchSize)",
                 "--max-length", "\(c.train.maxLength)", "--max-grad-norm", "\(c.train.maxGradNorm)", "--seed", "\(seed)",
                 "--save-every", "\(c.train.saveEvery)", "--resume", "--reference-cache", path("reference-cache")] + extra)
        }
        switch method {
        case "dpo":
            try align(model: c.model, output: base + "/model", extra: [])
            return (base + "/model", [])
        case "sn-tune":
            try align(model: c.model, output: base + "/model",
                      extra: ["--neurons", path("original/neurons.json"), "--neuron-set", "union", "--train-only-neurons", "--ablate", "never"])
            return (base + "/model", [])
        default:
            let ablate: String
            switch method {
            case "safeneuron": ablate = "always"
            case "safeneuron-freeze": ablate = "never"
            default: ablate = "dropout:\(c.train.dropoutP)"
            }
            var model = c.model
            let k = c.train.frozenTopK
            // The frozen set of a round's identification: its τ union, or its k largest d as a union.
            func frozenSet(of folder: String) throws -> String {
                k > 0 ? try topKAsUnion(from: folder, k: k) : folder + "/neurons.json"
            }
            var frozen = try frozenSet(of: path("original"))
            var info: [[String: Any]] = []
            for r in 1...c.rounds {
                let roundDir = base + "/round\(r)"
                if r > 1 {
                    // Re-identify on the current model and add its neurons to the frozen set.
                    try identify(model: model, into: roundDir + "/identify", prompts: identifyInputs, topK: k, ablate: nil)
                    let merged = roundDir + "/frozen.json"
                    if !FileManager.default.fileExists(atPath: merged) {
                        try mergeNeuronFiles(frozen, try frozenSet(of: roundDir + "/identify"), into: merged)
                    }
                    frozen = merged
                }
                try align(model: model, output: roundDir + "/model",
                          extra: ["--neurons", frozen, "--neuron-set", "union", "--ablate", ablate])
                let nf = try NeuronsFile.read(from: URL(fileURLWithPath: frozen))
                info.append(["round": r, "frozen": nf.counts.union, "es": nf.counts.es, "sas": nf.counts.sas])
                model = roundDir + "/model"
            }
            return (model, info)
        }
    }

    /// A neurons file whose union (the set training freezes) is the `k` neurons with the largest d.
    func topKAsUnion(from folder: String, k: Int) throws -> String {
        let out = folder + "/frozen_top\(k).json"
        if FileManager.default.fileExists(atPath: out) { return out }
        var file = try NeuronsFile.read(from: URL(fileURLWithPath: try topKFile(from: folder, k: k)))
        file.sets.union = file.sets.topk ?? []
        file.counts.union = file.sets.union.count
        try file.write(to: URL(fileURLWithPath: out))
        return out
    }

    func mergeNeuronFiles(_ a: String, _ b: String, into out: String) throws {
        var fa = try NeuronsFile.read(from: URL(fileURLWithPath: a))
        let fb = try NeuronsFile.read(from: URL(fileURLWithPath: b))
        func merge(_ x: [[Int]], _ y: [[Int]]) -> [[Int]] {
            Array(Set((x + y).map { $0[0] * fa.intermediateSize + $0[1] })).sorted().map { [$0 / fa.intermediateSize, $0 % fa.intermediateSize] }
        }
        fa.sets.es = merge(fa.sets.es, fb.sets.es)
        fa.sets.sas = merge(fa.sets.sas, fb.sets.sas)
        fa.sets.union = merge(fa.sets.union, fb.sets.union)
        fa.sets.topk = nil; fa.counts.topk = nil; fa.topK = nil
        fa.counts.es = fa.sets.es.count; fa.counts.sas = fa.sets.sas.count; fa.counts.union = fa.sets.union.count
        fa.rounds = (fa.rounds ?? 1) + 1
        try fa.write(to: URL(fileURLWithPath: out))
    }

    /// One StrongREJECT evaluation of the attack matrix: a model with a neuron set pruned (or none).
    struct AttackCell {
        var name: String, model: String, output: String
        var prune: [String]      // [neurons file, set] or empty
        var neurons: [[Int]]
    }

    /// StrongREJECT under ORI, ES(SN−), SAS(SN−), FULL(SN−) and the top-k sweep for one model. Cells that
    /// zero the same neurons (e.g. FULL = SAS when ES is empty, ES = ORI when ES is empty) share one output.
    func attackPlan(model: String, attackDir: String) throws -> [AttackCell] {
        let nf = try NeuronsFile.read(from: URL(fileURLWithPath: attackDir + "/neurons.json"))
        var named: [(String, [String], [[Int]])] = [("ori", [], [])]
        for (name, set, pairs) in [("es", "es", nf.sets.es), ("sas", "sas", nf.sets.sas), ("full", "union", nf.sets.union)] {
            named.append((name, pairs.isEmpty ? [] : [attackDir + "/neurons.json", set], pairs))
        }
        for k in config.eval.topk.sorted() where k > 0 {
            let file = try topKFile(from: attackDir, k: k)
            named.append(("top\(k)", [file, "topk"], try NeuronsFile.read(from: URL(fileURLWithPath: file)).sets.topk ?? []))
        }
        var outputs: [[[Int]]: String] = [:]
        return named.map { name, prune, neurons in
            let out = outputs[neurons] ?? attackDir + "/eval/\(name)"
            outputs[neurons] = out
            return AttackCell(name: name, model: model, output: out, prune: prune, neurons: neurons)
        }
    }

    /// Runs every distinct cell (judged with the refusal judge plus the original model's fluency check) in one
    /// `eval` process; a rerun skips the finished ones.
    func evaluate(_ cells: [AttackCell], label: String) throws {
        let c = config
        var seen = Set<String>(), cellArgs: [String] = []
        for cell in cells where seen.insert(cell.output).inserted {
            let fields = [cell.output, cell.prune.first ?? "", cell.prune.count > 1 ? cell.prune[1] : "", cell.model]
            cellArgs += ["--cell", fields.joined(separator: ",")]
        }
        guard let first = cells.first else { return }
        var args = ["eval", "--model", first.model, "--suite", "safety", "--dataset", c.eval.dataset,
                    "--max-tokens", "\(c.eval.maxTokens)", "--batch-size", "\(c.eval.batchSize)",
                    "--fluency-model", c.model, "--fluency-threshold", "\(c.eval.fluencyThreshold)",
                    "--fluency-cache", path("fluency-cache.jsonl"), "--stop-at-refusal"] + cellArgs
        if let l = c.eval.limit { args += ["--limit", "\(l)"] }
        try runner.command("\(label): \(seen.count) cells", outputs: seen.sorted().map { $0 + "/summary.json" }, args)
    }

    /// Every cell's counts, n, Wilson interval and folder (`RunStatistics.cellFields`), by cell name.
    func cellFields(_ plan: [AttackCell]) throws -> [String: [String: Any]] {
        var out: [String: [String: Any]] = [:]
        for cell in plan { out[cell.name] = try RunStatistics.cellFields(evalDir: cell.output) }
        return out
    }

    /// results.json's asr / cells / topk fields of one method from its cells' summaries (`cells` holds every cell).
    func attackCounts(_ plan: [AttackCell]) throws -> [String: Any] {
        let counts = try cellFields(plan)
        var asr: [String: Int] = [:]
        let cellCounts: [String: Any] = counts
        for name in ["ori", "es", "sas", "full"] { asr[name] = counts[name]?["complied"] as? Int }
        var topk: [String: Any] = ["0": counts["ori"] ?? [:]]
        for k in config.eval.topk where k > 0 { topk["\(k)"] = counts["top\(k)"] ?? [:] }
        return ["asr": asr, "cells": cellCounts, "topk": topk]
    }

    func capability(method: String, model: String) throws -> [String: Any] {
        let out = path("capability/\(method)")
        try runner.command("capability \(method)", outputs: [out + "/capability/summary.json"],
                           ["eval", "--model", model, "--output", out + "/capability", "--suite", "capability", "--no-gsm"])
        try runner.command("over-refusal \(method)", outputs: [out + "/overrefusal/summary.json"],
                           ["eval", "--model", model, "--output", out + "/overrefusal", "--suite", "overrefusal",
                            "--max-tokens", "\(config.eval.maxTokens)", "--batch-size", "\(config.eval.batchSize)", "--stop-at-refusal"])
        return try RunReport.capabilityFields(capability: out + "/capability/summary.json", overrefusal: out + "/overrefusal/summary.json")
    }
}
