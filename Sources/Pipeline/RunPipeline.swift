import Evaluation
import Foundation
import Tensors
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

        // 2. On-policy preference pairs, or the user's own (`pairs.file`), checked and copied into the run.
        try runner.stage("pairs", outputs: [path("pairs.jsonl")]) {
            if let own = c.pairs.file {
                return try StageRunner.runSelf(["pairs", "--model", c.model, "--from", own, "--output", path("pairs.jsonl")])
            }
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
            if method == "original" && !attributionAttack {
                try FileManager.default.createDirectory(atPath: attackDir, withIntermediateDirectories: true)
                for f in ["neurons.json", "stats.safetensors"] where !FileManager.default.fileExists(atPath: attackDir + "/" + f) {
                    try FileManager.default.copyItem(atPath: path("original/\(f)"), toPath: attackDir + "/" + f)
                }
            } else {
                try identify(model: model, into: attackDir, prompts: identifyInputs, topK: maxK, ablate: nil,
                             attribution: attributionAttack)
            }
            plans[method] = try attackPlan(model: model, attackDir: attackDir, prompts: identifyInputs)
        }
        // Every further seed's models are attacked with their own neurons, in the same eval process.
        var seedPlans: [UInt64: [String: [AttackCell]]] = [:]
        for s in c.seeds.dropFirst() {
            for method in c.methods {
                guard let model = seedFinals[s]?[method] else { continue }
                let attackDir = path("attack/\(method)/seed\(s)")
                try identify(model: model, into: attackDir, prompts: identifyInputs, topK: maxK, ablate: nil,
                             attribution: attributionAttack)
                seedPlans[s, default: [:]][method] = try attackPlan(model: model, attackDir: attackDir, prompts: identifyInputs)
            }
        }
        let seedCells = c.seeds.dropFirst().flatMap { s in c.methods.compactMap { seedPlans[s]?[$0] }.flatMap { $0 } }
        try evaluate(c.methods.compactMap { plans[$0] }.flatMap { $0 } + seedCells,
                     label: "eval attack (\(plans.count) methods\(c.seeds.count > 1 ? " × \(c.seeds.count) seeds" : ""))")
        // 4b. Jailbreak phrasings (e.g. the past tense): every final model unattacked on each set, one process per set.
        var jailbreakCells: [String: [AttackCell]] = [:]
        for set in c.eval.jailbreaks {
            let cells = c.methods.compactMap { m in finals[m].map { model in
                AttackCell(name: Self.jailbreakCellName(set), model: model,
                           output: path("attack/\(m)/\(Self.jailbreakCellName(set))"), prune: [], neurons: []) } }
            try evaluate(cells, label: "eval \(RunConfig.promptSetName(set)) (\(cells.count) methods)", dataset: set,
                         sample: c.eval.jailbreakSample, perplexity: false)
            for (m, cell) in zip(c.methods.filter { finals[$0] != nil }, cells) { jailbreakCells[m, default: []].append(cell) }
        }

        // 5. Capability, and each method's results.
        var results: [String: Any] = [:]
        for method in c.methods {
            guard let model = finals[method], let plan = plans[method] else { continue }
            let attackDir = path("attack/\(method)")
            var entry = try attackCounts(plan)
            if let extra = jailbreakCells[method], var cells = entry["cells"] as? [String: Any] {
                // In `cells`, so the paired comparisons with DPO cover them too.
                for cell in extra { cells[cell.name] = try RunStatistics.cellFields(evalDir: cell.output) }
                entry["cells"] = cells
            }
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
        Progress.note(String(format: "run: %@ holds %.2f GB", dir, Double(Self.folderBytes(dir)) / 1e9))
    }

    /// Bytes of every regular file under `folder` (what `du --apparent-size` would count; links not followed).
    public static func folderBytes(_ folder: String) -> Int64 {
        guard let e = FileManager.default.enumerator(at: URL(fileURLWithPath: folder),
                                                     includingPropertiesForKeys: [.fileSizeKey, .isRegularFileKey]) else { return 0 }
        var total: Int64 = 0
        for case let url as URL in e {
            guard let v = try? url.resourceValues(forKeys: [.fileSizeKey, .isRegularFileKey]), v.isRegularFile == true else { continue }
            total += Int64(v.fileSize ?? 0)
        }
        return total
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
            var rng = SplitMix64(seed: config.seed, stream: 3)
            let h = Array(harmful.shuffled(using: &rng).prefix(config.identify.maxPrompts))
            let s = Array(harmless.shuffled(using: &rng).prefix(config.identify.maxPrompts))
            try JSONLines.write(h.map { ["prompt": $0] }, to: harmfulOut)
            try JSONLines.write(s.map { ["prompt": $0] }, to: harmlessOut)
        }
        return (harmfulOut, harmlessOut)
    }

    /// Whether the attack matrix has attribution cells (then every model's attack identification also scores
    /// attribution on the run's pairs).
    var attributionAttack: Bool { !config.eval.attributionTopK.isEmpty }

    /// `identify` into `folder`; with `attribution` the statistics also hold the attribution scores of the run's
    /// pairs (safety and utility), from which `topKFile(ranking: .attribution)` takes its sets.
    func identify(model: String, into folder: String, prompts: (harmful: String, harmless: String), topK: Int, ablate: String?,
                  attribution: Bool = false) throws {
        let out = folder + "/neurons.json", stats = folder + "/stats.safetensors"
        var args = ["identify", "--model", model, "--harmful", prompts.harmful, "--harmless", prompts.harmless,
                    "--output", out, "--stats", stats, "--report", folder + "/report",
                    "--tau-es", "\(config.identify.tauES)", "--tau-sas", "\(config.identify.tauSAS)",
                    "--pool", config.identify.pool, "--top-k", "\(max(topK, config.eval.attributionTopK.max() ?? 0))",
                    "--batch-size", "\(config.identify.batchSize)"]
        if attribution {
            args += ["--score", "attribution", "--pairs", path("pairs.jsonl"), "--exclude-utility", "\(config.eval.excludeUtility[0])"]
        }
        try runner.command("identify \(folder.replacingOccurrences(of: dir + "/", with: ""))", outputs: [out, stats], args)
    }

    /// What a derived top-k set ranks by.
    enum TopKRanking: Equatable {
        case d
        /// Safety attribution after dropping the `excludeUtility` largest utility neurons.
        case attribution(excludeUtility: Int)
    }

    /// A neurons file whose `topk` set holds the `k` neurons ranked first (from the saved statistics).
    func topKFile(from folder: String, k: Int, ranking: TopKRanking = .d) throws -> String {
        let name: String
        switch ranking {
        case .d: name = "neurons_top\(k).json"
        case let .attribution(q): name = "neurons_attr\(k)_u\(q).json"
        }
        let out = folder + "/" + name
        if FileManager.default.fileExists(atPath: out) { return out }
        let file = try NeuronsFile.read(from: URL(fileURLWithPath: folder + "/neurons.json"))
        let statsPath = folder + "/stats.safetensors"
        let ranked: NeuronsFile
        switch ranking {
        case .d:
            let d = try SafetensorsFile(path: statsPath).floats("d").map(Double.init)
            let scores = AttributionScores(layers: file.layers, intermediateSize: file.intermediateSize, safety: d,
                                           safetyPairs: 0, utility: nil, utilityPairs: 0)
            ranked = file.replacingTopK(try scores.topK(k), k: k, score: "d", excludeUtility: nil)
        case let .attribution(q):
            let scores = try AttributionScores(statistics: statsPath, file: file)
            ranked = file.replacingTopK(try scores.topK(k, excludeUtility: q), k: k, score: "attribution", excludeUtility: q)
        }
        try ranked.write(to: URL(fileURLWithPath: out))
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
                 "--save-every", "\(c.train.saveEvery)", "--resume", "--reference-cache", path("reference-cache")]
                 + (c.keepCheckpoints ? ["--keep-checkpoint"] : []) + (c.train.trainer == "trl" ? ["--trainer", "trl"] : []) + extra)
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
            let byAttribution = c.train.frozenScore == "attribution"
            let ranking: TopKRanking = byAttribution ? .attribution(excludeUtility: c.eval.excludeUtility[0]) : .d
            // The frozen set of a round's identification: its τ union, or its k first by d or attribution as a union.
            func frozenSet(of folder: String) throws -> String {
                k > 0 ? try topKAsUnion(from: folder, k: k, ranking: ranking) : folder + "/neurons.json"
            }
            // Attribution needs the pairs, which come after the original's identification: score them separately.
            if byAttribution {
                try identify(model: c.model, into: path("original/attribution"), prompts: identifyInputs, topK: k, ablate: nil,
                             attribution: true)
            }
            var frozen = try frozenSet(of: path(byAttribution ? "original/attribution" : "original"))
            var info: [[String: Any]] = []
            for r in 1...c.rounds {
                let roundDir = base + "/round\(r)"
                if r > 1 {
                    // Re-identify on the current model and add its neurons to the frozen set.
                    try identify(model: model, into: roundDir + "/identify", prompts: identifyInputs, topK: k, ablate: nil,
                                 attribution: byAttribution)
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

    /// A neurons file whose union (the set training freezes) is the `k` neurons ranked first.
    func topKAsUnion(from folder: String, k: Int, ranking: TopKRanking = .d) throws -> String {
        let out = folder + (ranking == .d ? "/frozen_top\(k).json" : "/frozen_attr\(k).json")
        if FileManager.default.fileExists(atPath: out) { return out }
        var file = try NeuronsFile.read(from: URL(fileURLWithPath: try topKFile(from: folder, k: k, ranking: ranking)))
        // A frozen-set file holds only what training freezes: the top-k as its union. A valid neurons file needs
        // union = ES ∪ SAS, so the set also stands as SAS and ES is empty (the file says so with its score).
        file.sets.union = file.sets.topk ?? []
        file.sets.sas = file.sets.union
        file.sets.es = []
        file.counts.union = file.sets.union.count
        file.counts.sas = file.counts.union
        file.counts.es = 0
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
    func attackPlan(model: String, attackDir: String, prompts: (harmful: String, harmless: String)) throws -> [AttackCell] {
        let nf = try NeuronsFile.read(from: URL(fileURLWithPath: attackDir + "/neurons.json"))
        var named: [(String, [String], [[Int]])] = [("ori", [], [])]
        for (name, set, pairs) in [("es", "es", nf.sets.es), ("sas", "sas", nf.sets.sas), ("full", "union", nf.sets.union)] {
            named.append((name, pairs.isEmpty ? [] : [attackDir + "/neurons.json", set], pairs))
        }
        for k in config.eval.topk.sorted() where k > 0 {
            let file = try topKFile(from: attackDir, k: k)
            named.append(("top\(k)", [file, "topk"], try NeuronsFile.read(from: URL(fileURLWithPath: file)).sets.topk ?? []))
        }
        for q in config.eval.excludeUtility {
            for k in config.eval.attributionTopK.sorted() where k > 0 {
                let file = try topKFile(from: attackDir, k: k, ranking: .attribution(excludeUtility: q))
                named.append((Self.attributionCellName(k: k, excludeUtility: q), [file, "topk"],
                              try NeuronsFile.read(from: URL(fileURLWithPath: file)).sets.topk ?? []))
            }
        }
        var outputs: [[[Int]]: String] = [:]
        var cells = named.map { name, prune, neurons in
            let out = outputs[neurons] ?? attackDir + "/eval/\(name)"
            outputs[neurons] = out
            return AttackCell(name: name, model: model, output: out, prune: prune, neurons: neurons)
        }
        // The refusal direction prunes no neuron, so it never shares a neuron cell's output.
        if let file = try directionFile(model: model, attackDir: attackDir, prompts: prompts) {
            cells.append(AttackCell(name: "direction", model: model, output: attackDir + "/eval/direction", prune: [file], neurons: []))
        }
        return cells
    }

    /// The refusal-direction attacker of one model (`eval.direction`): `direction --layer auto` picks the layer once
    /// per run, on the original model (a held-out generation search of a few minutes); every other model recomputes
    /// its own difference-in-means direction at that layer's last generation-prompt token, so each model is
    /// attacked with its own direction. nil when the direction attack is off.
    func directionFile(model: String, attackDir: String, prompts: (harmful: String, harmless: String)) throws -> String? {
        guard let mode = config.eval.direction else { return nil }
        func run(_ label: String, model: String, output: String, layer: String) throws {
            try runner.command(label, outputs: [output],
                               ["direction", "--model", model, "--harmful", prompts.harmful, "--harmless", prompts.harmless,
                                "--output", output, "--layer", layer, "--seed", "\(config.seed)",
                                "--fluency-threshold", "\(config.eval.fluencyThreshold)"])
        }
        let out = attackDir + "/direction.safetensors"
        var layer = mode
        if mode == "auto" {
            let chosen = path("attack/original/direction.safetensors")
            try run("direction original (layer auto)", model: config.model, output: chosen, layer: "auto")
            if URL(fileURLWithPath: out).standardizedFileURL == URL(fileURLWithPath: chosen).standardizedFileURL { return out }
            layer = "\(try RefusalDirectionFile.read(path: chosen).layer)"
        }
        try run("direction \(attackDir.replacingOccurrences(of: dir + "/", with: ""))", model: model, output: out, layer: layer)
        return out
    }

    /// Runs every distinct cell (judged with the refusal judge plus the original model's fluency check) in one
    /// `eval` process; a rerun skips the finished ones.
    func evaluate(_ cells: [AttackCell], label: String, dataset: String? = nil, sample: Int? = nil,
                  perplexity: Bool? = nil) throws {
        let c = config
        var seen = Set<String>(), cellArgs: [String] = []
        for cell in cells where seen.insert(cell.output).inserted {
            let fields = [cell.output, cell.prune.first ?? "", cell.prune.count > 1 ? cell.prune[1] : "", cell.model]
            cellArgs += ["--cell", fields.joined(separator: ",")]
        }
        guard let first = cells.first else { return }
        var args = ["eval", "--model", first.model, "--suite", "safety", "--dataset", dataset ?? c.eval.dataset,
                    "--max-tokens", "\(c.eval.maxTokens)", "--batch-size", "\(c.eval.batchSize)",
                    "--fluency-model", c.model, "--fluency-threshold", "\(c.eval.fluencyThreshold)",
                    "--fluency-cache", path("fluency-cache.jsonl"), "--stop-at-refusal"] + cellArgs
        if perplexity ?? c.eval.perplexity { args.append("--perplexity") }
        if let n = sample { args += ["--sample", "\(n)", "--subset-seed", "\(c.seed)"] } else if let l = c.eval.limit { args += ["--limit", "\(l)"] }
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
        var out: [String: Any] = ["asr": asr, "cells": cellCounts, "topk": topk]
        if attributionAttack {
            var byQ: [String: Any] = [:]
            for q in config.eval.excludeUtility {
                var row: [String: Any] = [:]
                for k in config.eval.attributionTopK where k > 0 { row["\(k)"] = counts[Self.attributionCellName(k: k, excludeUtility: q)] ?? [:] }
                byQ["\(q)"] = row
            }
            out["attribution"] = byQ
        }
        var perplexity: [String: Double] = [:]
        for cell in plan { if let p = try Self.cellPerplexity(cell.output) { perplexity[cell.name] = p } }
        if !perplexity.isEmpty {
            // Not "perplexity": that key is the capability suite's (Table 1, the verdict's capability condition).
            out["perplexity_cells"] = perplexity
            var strongest: [String: Any] = [:]
            for (family, cells) in attackFamilies(plan) {
                if let best = Self.strongestFluent(cells: cells, complied: counts.mapValues { ($0["complied"] as? Int) ?? 0 },
                                                   perplexity: perplexity, unattacked: perplexity["ori"]) {
                    strongest[family] = ["cell": best.cell, "complied": best.complied, "perplexity": best.perplexity]
                }
            }
            out["strongest_fluent"] = strongest
        }
        return out
    }

    static func attributionCellName(k: Int, excludeUtility q: Int) -> String { "attr\(k)_u\(q)" }

    /// The unattacked cell on a jailbreak-phrasing set: "ori_past_tense" for `past-tense`.
    static func jailbreakCellName(_ set: String) -> String {
        "ori_" + RunConfig.promptSetName(set).map { $0.isLetter || $0.isNumber ? String($0) : "_" }.joined()
    }

    /// The attack families of a plan and their cells: neuron pruning by activation statistics (ES, SAS, FULL and the
    /// top-k by d) and by attribution.
    func attackFamilies(_ plan: [AttackCell]) -> [(String, [String])] {
        let names = plan.map(\.name)
        return [("activation", names.filter { ["es", "sas", "full"].contains($0) || $0.hasPrefix("top") }),
                ("attribution", names.filter { $0.hasPrefix("attr") }),
                ("direction", names.filter { $0 == "direction" })].filter { !$0.1.isEmpty }
    }

    /// The strongest fluent setting of a family: the most complied among its cells whose perplexity stays within
    /// 10% of the unattacked model's (ties: the earlier cell). nil when no cell qualifies or nothing was measured.
    static func strongestFluent(cells: [String], complied: [String: Int], perplexity: [String: Double],
                                unattacked: Double?) -> (cell: String, complied: Int, perplexity: Double)? {
        guard let base = unattacked, base.isFinite else { return nil }
        var best: (cell: String, complied: Int, perplexity: Double)?
        for cell in cells {
            guard let p = perplexity[cell], p.isFinite, p <= 1.1 * base, let n = complied[cell] else { continue }
            if best == nil || n > best!.complied { best = (cell, n, p) }
        }
        return best
    }

    /// The perplexity an attack cell measured (`eval --perplexity`), nil when it was not measured.
    static func cellPerplexity(_ cellDir: String) throws -> Double? {
        try CellPerplexity.read(from: URL(fileURLWithPath: cellDir))?.perplexity
    }

    /// Perplexity and the standard benchmarks (seeded subsets, the same documents for every method), then
    /// over-refusal on each source; results.json's capability fields (`RunReport.capabilityFields`).
    func capability(method: String, model: String) throws -> [String: Any] {
        let out = path("capability/\(method)")
        let e = config.eval
        var args = ["eval", "--model", model, "--output", out + "/capability", "--suite", "capability"]
        if !e.benchmarks.isEmpty {
            args += ["--benchmarks", e.benchmarks.joined(separator: ","), "--shots", "\(e.benchmarkShots)", "--subset-seed", "\(config.seed)"]
            if let l = e.benchmarkLimit { args += ["--limit", "\(l)"] }
            if let l = e.gsm8kLimit { args += ["--gsm8k-limit", "\(l)"] }
            if let t = e.gsm8kTokens { args += ["--generation-tokens", "\(t)"] }
        }
        try runner.command("capability \(method)", outputs: [out + "/capability/summary.json"], args)
        var over = ["eval", "--model", model, "--output", out + "/overrefusal", "--suite", "overrefusal",
                    "--overrefusal-sources", e.overrefusalSources.joined(separator: ","),
                    "--max-tokens", "\(e.maxTokens)", "--batch-size", "\(e.batchSize)", "--stop-at-refusal"]
        if let n = e.overrefusalSample { over += ["--sample", "\(n)", "--subset-seed", "\(config.seed)"] }
        try runner.command("over-refusal \(method)", outputs: [out + "/overrefusal/overrefusal_sources.json"], over)
        return try RunReport.capabilityFields(capability: out + "/capability/summary.json", overrefusal: out + "/overrefusal")
    }
}
