import ArgumentParser
import Evaluation
import Foundation
import Runtime
import Transformer

/// Judge options shared by `eval` and `judge`.
struct JudgeOptions: ParsableArguments {
    @Option(help: "refusal (string rules), guard:MODEL (Llama Guard 3) or rubric:MODEL (StrongREJECT rubric by an instruct model).")
    var judge: String = "refusal"
    @Option(help: "Flag responses whose mean token NLL under this model exceeds --fluency-threshold as degenerate (refusal judge).")
    var fluencyModel: String?
    @Option(help: "Mean per-token NLL (nats) above which a response is degenerate.")
    var fluencyThreshold: Double = 3.0
    @Option(help: "Remember fluency scores in this JSON Lines file and reuse them (runs that score many cells with one reference model).")
    var fluencyCache: String?

    func spec() throws -> JudgeSpec { try JudgeSpec(parsing: judge) }

    /// Loads judge models, reusing `loaded` when a path names the same model.
    func make(reusing loaded: LanguageModel?, batchSize: Int) throws -> ResponseJudge {
        var cache: [String: LanguageModel] = [:]
        if let m = loaded { cache[URL(fileURLWithPath: m.path).standardizedFileURL.path] = m }
        return try spec().make(load: { p in
            let key = URL(fileURLWithPath: p).standardizedFileURL.path
            if let m = cache[key] { return m }
            let m = try ModelOptions(model: p).load()
            cache[key] = m
            return m
        }, fluencyModel: fluencyModel, fluencyThreshold: fluencyThreshold, batchSize: batchSize,
           rubricFolder: JudgeSpec.defaultRubricFolder(root: DataPaths.root), fluencyCache: fluencyCache)
    }
}

extension ModelOptions {
    init(model: String?) { self.init(); self.model = model }
}

struct EvalCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "eval",
        abstract: "Evaluate a model: attack success on a harmful prompt set, over-refusal, capability.",
        discussion: """
        Safety: each prompt is wrapped in the model's chat template and answered greedily in batches of \
        --batch-size (prompts grouped by length; output order = input order); --prune zeroes the chosen neuron \
        set. DIR gets generations.jsonl ({prompt, response, category, verdict, tokens}), judgements.jsonl, \
        timing.json and summary.json. A killed run resumes from generations.jsonl; rerunning a finished run \
        gives the same summary.json except wall_seconds and created_at. Over-refusal uses data/harmless_eval.txt \
        and the refusal judge (--overrefusal-sources for others). Capability: perplexity (data/perplexity.txt, \
        windows of 512 tokens) and the --benchmarks (ARC, HellaSwag, PIQA, WinoGrande, OpenBookQA, MMLU: acc and \
        acc_norm; GSM8K: greedy exact match), all on raw text without the chat template; DIR/benchmark_items.jsonl \
        holds every scored document. --suite all writes DIR/safety, DIR/overrefusal and DIR/capability.
        """)

    @OptionGroup var model: ModelOptions
    @OptionGroup var pruning: PruneOptions
    @OptionGroup var direction: DirectionAblationOptions
    @OptionGroup var judging: JudgeOptions
    @Option(help: "Output folder.") var output: String?
    @Option(help: ArgumentHelp("One attack cell of the safety suite: DIR[,NEURONS[,SET[,MODEL]]] evaluates MODEL (default --model) with SET (default union) of a neurons file pruned into DIR (NEURONS may instead be a direction .safetensors from `direction`, whose direction is then ablated). Repeat for whole attack matrices: each model, the judge and the fluency model's prompt states are loaded once; finished cells (DIR/summary.json) are skipped. Replaces --output and --prune.", valueName: "cell"))
    var cell: [String] = []
    @Option(help: "Which suite to run (all: each in its own subfolder).") var suite: Suite = .safety
    @Option(help: "strongreject, strongreject-small, harmbench, donotanswer, past-tense, future-tense, uncensorbench or a prompt file (.txt/.jsonl/.csv).")
    var dataset: String = "strongreject"
    @Option(help: ArgumentHelp("Over-refusal suite: these benign prompt sets (built-in names or files), each measured on its own, in DIR/<source> when there are several, with a Wilson 95% interval; DIR/overrefusal_sources.json lists them all.", valueName: "list"))
    var overrefusalSources: String = "harmless,rho-edgy,rho-paired-benign"
    @Option(help: "Row label in reports (default: the model's file name).") var method: String?
    @Option(help: "Most new tokens per response.") var maxTokens = 256
    @Option(help: "Prompts decoded together.") var batchSize = 32
    @Flag(help: "End each response once it holds a refusal phrase (its refusal-judge verdict is then settled).")
    var stopAtRefusal = false
    @Option(help: "Only the first N prompts (with --benchmarks: a seeded subset of N documents per benchmark).") var limit: Int?
    @Option(help: ArgumentHelp("Capability suite: these standard benchmarks besides perplexity, scored like lm-evaluation-harness (acc, acc_norm by continuation bytes, standard errors): \(Benchmarks.names.joined(separator: ", ")).", valueName: "list"))
    var benchmarks: String?
    @Option(help: "Few-shot examples per --benchmarks context: 0 or 5 (the OLMES request files' own; MMLU: the subject's first 5 dev questions).") var shots = 0
    @Option(help: "A seeded random N prompts of the prompt set (and of each over-refusal source), kept in file order; the seed is --subset-seed.")
    var sample: Int?
    @Option(help: "Seed of the --limit subsets of --benchmarks and of --sample.") var subsetSeed: UInt64 = 0
    @Option(help: "GSM8K: a seeded subset of N problems (default: --limit).") var gsm8kLimit: Int?
    @Option(help: "GSM8K: most new tokens per answer (default: the requests' own 512).") var generationTokens: Int?
    @Option(help: "A system message before each prompt.") var system: String?
    @Flag(help: "Safety suite: also measure the (pruned) model's perplexity on data/perplexity.txt into DIR/perplexity.json, the fluency side of an attack cell.")
    var perplexity = false

    enum Suite: String, ExpressibleByArgument, CaseIterable { case safety, overrefusal, capability, all }

    func validate() throws {
        if maxTokens < 1 { throw ValidationError("--max-tokens must be ≥ 1") }
        if batchSize < 1 { throw ValidationError("--batch-size must be ≥ 1") }
        if let l = limit, l < 1 { throw ValidationError("--limit must be ≥ 1") }
        if let n = sample, n < 1 { throw ValidationError("--sample must be ≥ 1") }
        if let n = gsm8kLimit, n < 1 { throw ValidationError("--gsm8k-limit must be ≥ 1") }
        if sample != nil && limit != nil { throw ValidationError("--sample and --limit: choose one way to shorten the prompt set") }
        if ![0, 5].contains(shots) { throw ValidationError("--shots must be 0 or 5") }
        if let b = benchmarks {
            if suite != .capability && suite != .all { throw ValidationError("--benchmarks needs --suite capability (or all)") }
            for name in EvalCommand.benchmarkList(b) where !Benchmarks.names.contains(name) {
                throw ValidationError("--benchmarks: unknown benchmark '\(name)' (known: \(Benchmarks.names.joined(separator: ", ")))")
            }
            if EvalCommand.benchmarkList(b).isEmpty { throw ValidationError("--benchmarks: empty list") }
        }
        if !(judging.fluencyThreshold > 0) { throw ValidationError("--fluency-threshold must be > 0") }
        do { _ = try judging.spec() } catch { throw ValidationError(String(describing: error)) }
        if cell.isEmpty == (output == nil) { throw ValidationError("give either --output or one or more --cell") }
        if pruning.prune != nil && direction.ablateDirection != nil { throw ValidationError("give --prune or --ablate-direction, not both") }
        if !cell.isEmpty && direction.ablateDirection != nil { throw ValidationError("--cell names its own direction file; drop --ablate-direction") }
        if !cell.isEmpty {
            if suite != .safety { throw ValidationError("--cell needs --suite safety") }
            if pruning.prune != nil { throw ValidationError("--cell names its own neurons; drop --prune") }
            for c in cell { _ = try EvalCommand.parseCell(c) }
        }
    }

    /// "DIR[,NEURONS[,SET[,MODEL]]]"; an empty field takes its default (no pruning, union, --model).
    static func parseCell(_ text: String) throws -> (output: String, prune: String?, set: String, model: String?) {
        let parts = text.split(separator: ",", omittingEmptySubsequences: false).map(String.init)
        guard (1...4).contains(parts.count), !parts[0].isEmpty else {
            throw ValidationError("--cell \(text): expected DIR[,NEURONS[,SET[,MODEL]]]")
        }
        func field(_ i: Int) -> String? { i < parts.count && !parts[i].isEmpty ? parts[i] : nil }
        let set = field(2) ?? "union"
        guard ["union", "es", "sas", "topk"].contains(set) else { throw ValidationError("--cell \(text): set must be union, es, sas or topk") }
        return (parts[0], field(1), set, field(3))
    }

    /// A --cell NEURONS field naming a direction file rather than a neurons.json.
    static func isDirectionFile(_ path: String?) -> Bool { path?.lowercased().hasSuffix(".safetensors") ?? false }

    /// The attack condition of an ablated refusal direction.
    static func directionInfo(_ path: String) throws -> PruneSetInfo {
        PruneSetInfo(name: "DIR(r−)", neuronCount: 0, path: path, sha256: try SHA256.hexOfFile(URL(fileURLWithPath: path)))
    }

    func pruneInfo(_ path: String?, set: String, ablation: NeuronSet?) throws -> PruneSetInfo? {
        guard let path, let a = ablation else { return nil }
        return PruneSetInfo(name: PruneSetInfo.conditionName(forSet: set), neuronCount: a.count,
                            path: path, sha256: try SHA256.hexOfFile(URL(fileURLWithPath: path)))
    }

    func run() throws {
        try runReporting {
            let m = try model.load()
            let ablation = try pruning.neuronSet(for: m)
            try direction.apply(to: m)
            // A judge model must not share the ablated engine (its fluency scores are the intact model's).
            let judgeBase: LanguageModel? = direction.ablateDirection != nil || cell.contains { EvalCommand.isDirectionFile(try? EvalCommand.parseCell($0).prune) } ? nil : m
            let started = Date()
            let sha = try SHA256.hexOfModel(path: m.path)
            Progress.note("model sha256 \(sha) (\(String(format: "%.1f", Date().timeIntervalSince(started)))s)")
            let pruneInfo = try direction.ablateDirection.map(EvalCommand.directionInfo)
                ?? self.pruneInfo(pruning.prune, set: pruning.pruneSet.rawValue, ablation: ablation)
            let label = method ?? JudgeSpec.shortName(m.path)
            let out = URL(fileURLWithPath: output ?? ".", isDirectory: true)
            let gen = GenerationSettings(maxNewTokens: maxTokens, batchSize: batchSize, system: system, stopAtRefusal: stopAtRefusal)
            let all = suite == .all
            var extra: [String: SettingValue] = ["model": .string(m.displayName)]
            if let l = limit { extra["limit"] = .int(l) }
            if let n = sample { extra["sample"] = .int(n); extra["sample_seed"] = .int(Int(subsetSeed)) }
            func safety(_ m: LanguageModel, sha: String, ablation: NeuronSet?, pruneInfo: PruneSetInfo?, judge: ResponseJudge, into dir: URL) throws {
                var prompts = try loadPrompts(dataset, root: DataPaths.root)
                if let l = limit { prompts = Array(prompts.prefix(l)) }
                prompts = SeededSubset.pick(prompts, count: sample, seed: subsetSeed)
                var extra = extra
                extra["model"] = .string(m.displayName)
                let cfg = SafetyEvaluator.Config(method: method ?? JudgeSpec.shortName(m.path), dataset: datasetName, generation: gen,
                                                 pruneSet: pruneInfo, modelSHA256: sha, extraSettings: extra)
                // Before the summary: a cell whose summary.json exists counts as finished, perplexity included.
                if perplexity { try CellPerplexity.measure(m, ablation: ablation, into: dir) }
                let s = try SafetyEvaluator(model: m, ablation: ablation, config: cfg).run(prompts: prompts, judge: judge, output: dir)
                Progress.note("ASR \(s.asr.count)/\(s.asr.total) (\(String(format: "%.1f", s.asr.percent))%), refused \(s.refused), degenerate \(s.degenerate), judge \(s.judge) → \(dir.path)")
            }
            if !cell.isEmpty {
                let judge = try judging.make(reusing: judgeBase, batchSize: batchSize)
                func key(_ p: String) -> String { URL(fileURLWithPath: p).standardizedFileURL.path }
                var current = (model: m, sha: sha)
                for (i, text) in cell.enumerated() {
                    let c = try EvalCommand.parseCell(text)
                    let dir = URL(fileURLWithPath: c.output, isDirectory: true)
                    if FileManager.default.fileExists(atPath: dir.appendingPathComponent("summary.json").path) {
                        Progress.note("cell \(i + 1)/\(cell.count): \(c.output) is finished")
                        continue
                    }
                    Progress.note("cell \(i + 1)/\(cell.count): \(c.output)")
                    let wanted = c.model ?? m.path
                    if key(wanted) != key(current.model.path) {
                        let next = key(wanted) == key(m.path) ? m : try ModelOptions(model: wanted).load()
                        current = (next, try SHA256.hexOfModel(path: next.path))
                    }
                    if EvalCommand.isDirectionFile(c.prune), let path = c.prune {
                        try current.model.ablateDirection(from: path)
                        defer { try? current.model.engine.setAblatedDirection(nil) }
                        try safety(current.model, sha: current.sha, ablation: nil, pruneInfo: try EvalCommand.directionInfo(path),
                                   judge: judge, into: dir)
                        continue
                    }
                    let a = try c.prune.map { try loadNeuronSet($0, set: c.set, config: current.model.config) }
                    try safety(current.model, sha: current.sha, ablation: a, pruneInfo: try self.pruneInfo(c.prune, set: c.set, ablation: a),
                               judge: judge, into: dir)
                }
                return
            }
            if all || suite == .safety {
                let judge = try judging.make(reusing: judgeBase, batchSize: batchSize)
                try safety(m, sha: sha, ablation: ablation, pruneInfo: pruneInfo, judge: judge, into: all ? out.appendingPathComponent("safety") : out)
            }
            if all || suite == .overrefusal {
                let sources = overrefusalSources.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
                guard !sources.isEmpty else { throw ValidationError("--overrefusal-sources is empty") }
                // Every source is read before the first generation.
                let promptSets = try sources.map { src -> [PromptRecord] in
                    let p = try loadPrompts(src, root: DataPaths.root)
                    return SeededSubset.pick(limit.map { Array(p.prefix($0)) } ?? p, count: sample, seed: subsetSeed)
                }
                let rules = try JudgeSpec.refusal.make(load: { try ModelOptions(model: $0).load() }, fluencyModel: nil,
                                                       fluencyThreshold: judging.fluencyThreshold, batchSize: batchSize,
                                                       rubricFolder: JudgeSpec.defaultRubricFolder(root: DataPaths.root))
                let base = all ? out.appendingPathComponent("overrefusal") : out
                var rows: [[String: Any]] = []
                for (src, prompts) in zip(sources, promptSets) {
                    let name = BuiltinDataset(rawValue: src.lowercased()) != nil ? src.lowercased() : URL(fileURLWithPath: src).lastPathComponent
                    let cfg = SafetyEvaluator.Config(method: label, role: SafetySummary.roleOverRefusal, dataset: name,
                                                     generation: gen, pruneSet: pruneInfo, modelSHA256: sha, extraSettings: extra)
                    let dir = sources.count > 1 ? base.appendingPathComponent(name) : base
                    let s = try SafetyEvaluator(model: m, ablation: ablation, config: cfg).run(prompts: prompts, judge: rules, output: dir)
                    let ci = Statistics.wilson(successes: s.refused, of: s.asr.total)
                    rows.append(["source": name, "refused": s.refused, "total": s.asr.total, "rate": s.refusalRate.fraction,
                                 "wilson95_low": ci?.lower ?? NSNull(), "wilson95_high": ci?.upper ?? NSNull(),
                                 "folder": sources.count > 1 ? dir.lastPathComponent : "."])
                    Progress.note("over-refusal on \(name): \(s.refused)/\(s.asr.total) (\(String(format: "%.1f", s.refusalRate.percent))%"
                                  + (ci.map { String(format: ", Wilson 95%% %.1f–%.1f%%", $0.lower * 100, $0.upper * 100) } ?? "") + ") → \(dir.path)")
                }
                do {
                    try AtomicFile.write(try JSONSerialization.data(withJSONObject: ["format": "safeneuron.overrefusal_sources/1", "method": label, "sources": rows],
                                                                    options: [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]),
                                         to: base.appendingPathComponent("overrefusal_sources.json").path)
                }
            }
            if all || suite == .capability {
                let dir = all ? out.appendingPathComponent("capability") : out
                let scorer = ModelCapabilityScorer(model: m, ablation: ablation, batchSize: min(batchSize, 16))
                var suite = CapabilitySuite(names: benchmarks.map(EvalCommand.benchmarkList) ?? [], shots: shots, limit: limit,
                                            seed: subsetSeed)
                suite.generationTokens = generationTokens
                suite.gsm8kLimit = gsm8kLimit ?? limit
                suite.perplexityFile = DataPaths.projectData.appendingPathComponent("perplexity.txt")
                let s = try suite.run(scorer, method: label, output: dir, settings: extra, modelSHA256: sha, pruneSet: pruneInfo)
                let figures = (s.benchmarks ?? []).map { b in
                    b.benchmark == GSM8K.name ? "gsm8k exact match \(String(format: "%.4f", b.acc))"
                        : "\(b.benchmark) acc \(String(format: "%.4f", b.acc)) acc_norm \(String(format: "%.4f", b.accNorm))"
                }
                Progress.note("capability: " + ([s.metrics["perplexity"].map { "perplexity \(String(format: "%.3f", $0))" }].compactMap { $0 } + figures)
                    .joined(separator: ", ") + " → \(dir.path)")
            }
        }
    }

    static func benchmarkList(_ text: String) -> [String] {
        text.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces).lowercased() }.filter { !$0.isEmpty }
    }

    /// Built-in name, else the prompt file's name.
    var datasetName: String {
        BuiltinDataset(rawValue: dataset.lowercased()) != nil ? dataset.lowercased() : URL(fileURLWithPath: dataset).lastPathComponent
    }
}

