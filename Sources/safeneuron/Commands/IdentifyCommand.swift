import Alignment
import ArgumentParser
import Evaluation
import Foundation
import Runtime
import SafetyNeurons
import Transformer

struct IdentifyCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "identify",
        abstract: "Find safety neurons: Activation Effect Size ∪ Safety Activation Shift.",
        discussion: """
        Every prompt gets the chat template with the generation prompt; each MLP neuron's activation \
        silu(gate)·up (the input of down_proj) is pooled per prompt (mean or max over positions, or the last one). \
        ES selects d = (mean_harmful − mean_harmless) / pooled sd > τ_ES; SAS selects neurons whose mean \
        difference, z-scored within its layer, is > τ_SAS and positive. Prompt files are .txt, .jsonl or .csv. \
        `--top-k K` also records the K neurons with the largest score: Cohen's d (`--score d`), or with \
        `--score attribution --pairs P` the gradient attribution a·∂margin/∂a (margin = log p(chosen) − \
        log p(rejected), summed over every position, averaged over the safety pairs of P), after dropping the \
        `--exclude-utility Q` neurons with the largest |a·∂log p(chosen)/∂a| on P's general pairs \
        (Wei et al. 2024's set difference). Rows of P with "kind": "general" are general pairs, all others safety. \
        Defaults: harmful = HarmBench standard behaviours + Do-Not-Answer; harmless = data/harmless_identify.txt. \
        StrongREJECT is held out for evaluation.
        """)

    @OptionGroup var model: ModelOptions
    @Option(help: "Harmful prompts: a file or a built-in dataset name (default: harmbench + donotanswer's malicious_uses and discrimination/toxicity files).") var harmful: String?
    @Option(help: "Harmless prompts: a file (default: data/harmless_identify.txt).") var harmless: String?
    @Option(help: "Where to write neurons.json.") var output: String
    @Option(help: "Effect-size threshold.") var tauEs: Double = 2
    @Option(help: "Activation-shift z threshold.") var tauSas: Double = 2
    @Option(help: "Pooling over prompt positions.") var pool: ActivationPooling = .mean
    @Option(help: "Also record the K neurons with the largest score as set `topk`.") var topK: Int?
    @Option(help: "What the top-k ranks by: d (Cohen's d of the pooled activations) or attribution (needs --pairs).")
    var score: TopKScore = .d
    @Option(help: "Preference pairs (JSONL: prompt, chosen, rejected, optional kind) for --score attribution.")
    var pairs: String?
    @Option(help: "General pairs for the utility score (default: the rows of --pairs with kind \"general\").")
    var utilityPairs: String?
    @Option(help: "Drop the Q neurons with the largest utility score before taking the attribution top-k.")
    var excludeUtility: Int = 0
    @Option(help: "Pairs per attribution forward/backward.") var pairsBatchSize = 4
    @Option(help: "Prompts per forward pass.") var batchSize = 16
    @Option(help: "Save every neuron's statistics (safetensors).") var stats: String?
    @Option(help: "Write a per-layer table and SVG chart into this folder.") var report: String?

    func validate() throws {
        if let k = topK, k < 0 { throw ValidationError("--top-k must be ≥ 0") }
        if score == .attribution {
            guard pairs != nil else { throw ValidationError("--score attribution needs --pairs") }
            guard topK != nil else { throw ValidationError("--score attribution needs --top-k") }
        } else if pairs != nil || utilityPairs != nil || excludeUtility != 0 {
            throw ValidationError("--pairs, --utility-pairs and --exclude-utility apply to --score attribution only")
        }
        if excludeUtility < 0 { throw ValidationError("--exclude-utility must be ≥ 0") }
        if pairsBatchSize < 1 { throw ValidationError("--pairs-batch-size must be ≥ 1") }
        if batchSize < 1 { throw ValidationError("--batch-size must be ≥ 1") }
    }

    func run() throws {
        try runReporting {
            let m = try model.load()
            let harmfulPrompts = try harmfulPrompts(harmful)
            let harmlessPrompts = try harmlessPrompts(harmless)
            var settings = IdentificationSettings()
            settings.pooling = pool
            settings.tauES = tauEs; settings.tauSAS = tauSas; settings.topK = topK; settings.batchSize = batchSize
            Progress.note("identify: \(harmfulPrompts.count) harmful, \(harmlessPrompts.count) harmless prompts")
            var result = try NeuronIdentifier.run(model: m, harmful: harmfulPrompts, harmless: harmlessPrompts,
                                                  settings: settings, modelName: m.displayName)
            var attribution: AttributionScores?
            if score == .attribution, let pairs, let k = topK {
                let rows = try AlignCommand.readLabelledPairs(pairs, model: m)
                let asPair = { (e: PreferenceExample) in
                    AttributionPair(chosen: TrainingSequence(tokens: e.chosenIds, completionStart: e.promptIds.count),
                                    rejected: TrainingSequence(tokens: e.rejectedIds, completionStart: e.promptIds.count))
                }
                let safety = rows.filter { $0.kind != "general" }.map { asPair($0.example) }
                let utility = try utilityPairs.map { try AlignCommand.readPairs($0, model: m).map(asPair) }
                    ?? rows.filter { $0.kind == "general" }.map { asPair($0.example) }
                if excludeUtility > 0 && utility.isEmpty {
                    throw RuntimeError.badFile(path: pairs, reason: "--exclude-utility needs general pairs (rows with \"kind\": \"general\") or --utility-pairs")
                }
                Progress.note("identify: attribution on \(safety.count) safety and \(utility.count) general pairs")
                let scores = try NeuronAttributor.run(weights: m.weights, safety: safety, utility: utility,
                                                      pairsPerBatch: pairsBatchSize)
                try result.rankTopK(byAttribution: scores, k: k, excludeUtility: excludeUtility)
                attribution = scores
            }
            for file in [output, stats].compactMap({ $0 }) {
                try FileManager.default.createDirectory(at: URL(fileURLWithPath: file).deletingLastPathComponent(),
                                                        withIntermediateDirectories: true)
            }
            try result.file.write(to: URL(fileURLWithPath: output))
            if let stats { try NeuronIdentifier.writeStatistics(result.scores, attribution: attribution, to: stats) }
            if let report { try IdentificationReport.write(result, model: m, to: report) }
            let total = m.config.numHiddenLayers * m.config.intermediateSize
            Progress.note(String(format: "identify: es %d, sas %d, union %d of %d neurons (%.2f%%); %.1f prompts/s → %@",
                                 result.selection.es.count, result.selection.sas.count, result.selection.union.count, total,
                                 100 * Double(result.selection.union.count) / Double(total), result.promptsPerSecond, output))
        }
    }
}

/// What `identify --top-k` ranks neurons by.
enum TopKScore: String, ExpressibleByArgument, CaseIterable {
    case d, attribution
}

extension ActivationPooling: ExpressibleByArgument {}

/// The per-layer table and chart of `identify --report` (the paper's layer-wise analysis).
enum IdentificationReport {
    static func write(_ r: IdentificationResult, model: LanguageModel, to dir: String) throws {
        let rows = r.scores.layerSummary(r.selection)
        let chart = SVGChart.bars(title: "Safety neurons per layer", categories: rows.map { "\($0.layer)" },
                                  series: [("ES", rows.map { Double($0.es) }), ("SAS", rows.map { Double($0.sas) }),
                                           ("union", rows.map { Double($0.union) })],
                                  yLabel: "neurons")
        let md = """
        # Safety neurons of \(model.displayName)

        Pooling `\(r.file.pool)`, τ_ES = \(r.file.tauES), τ_SAS = \(r.file.tauSAS); \(r.file.harmful) harmful and \
        \(r.file.harmless) harmless prompts. ES \(r.selection.es.count), SAS \(r.selection.sas.count), \
        union \(r.selection.union.count) of \(model.config.numHiddenLayers * model.config.intermediateSize) neurons.

        ![neurons per layer](layers.svg)

        \(LayerSummary.markdownTable(rows))
        """
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        try AtomicFile.write(chart, to: dir + "/layers.svg")
        try AtomicFile.write(md, to: dir + "/layers.md")
    }
}
