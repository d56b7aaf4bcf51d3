import Alignment
import ArgumentParser
import Evaluation
import Foundation
import Pipeline
import Runtime

struct PairsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "pairs",
        abstract: "Build on-policy DPO preference pairs from the model itself.",
        discussion: """
        Harmful prompts: chosen = the model's own refusal under a safety system prompt when the refusal judge \
        agrees, else one of the written refusals in data/refusals.txt; rejected = the model's own compliant \
        answer, generated with the --neurons set pruned where the intact model refuses. Harmless prompts: \
        chosen = the model's own answer, rejected = a written over-refusal from data/overrefusals.txt, worded apart from the safety refusals (guards against over-refusal). Default mix \
        30% safety / 70% general. StrongREJECT is never used here. Output lines: {"prompt", "chosen", "rejected", "kind", ...}.
        With --from FILE no pairs are generated: FILE's pairs (any format `align --pairs` reads) are checked against \
        the model's chat template and its usable lines are copied to --output unchanged (how `run` uses `pairs.file`).
        """)

    @OptionGroup var model: ModelOptions
    @Option(help: "Harmful prompts: file or dataset name (default: harmbench + donotanswer's malicious_uses and discrimination/toxicity files).") var harmful: String?
    @Option(help: "Harmless prompts (default: data/harmless_identify.txt).") var harmless: String?
    @Option(help: "Where to write pairs.jsonl.") var output: String
    @Option(help: "Number of pairs.") var count = 200
    @Option(help: "Share of safety pairs.") var safetyFraction = 0.3
    @Option(help: "Most new tokens per generated response.") var maxTokens = 64
    @Option(help: "neurons.json whose set is pruned to obtain compliant answers.") var neurons: String?
    @Option(help: "Which set of --neurons to prune.") var neuronSet: NeuronSetChoice = .topk
    @Option(help: "The safety system prompt used for the model's own refusals.")
    var systemPrompt = PairSettings().systemPrompt
    @Option(help: "Random seed.") var seed: UInt64 = 0
    @Option(help: "Prompts generated together.") var batchSize = 32
    @Option(help: "Use this preference data instead of generating pairs (checked, then copied without its skipped rows).")
    var from: String?

    func validate() throws {
        if count < 1 { throw ValidationError("--count must be ≥ 1") }
        if !(0...1).contains(safetyFraction) { throw ValidationError("--safety-fraction must be in [0, 1]") }
    }

    func run() throws {
        try runReporting {
            let m = try model.load()
            if let from { return try copyPairs(from, model: m) }
            let harmfulPrompts = try harmfulPrompts(harmful)
            let harmlessPrompts = try harmlessPrompts(harmless)
            let ablation = try neurons.map { try loadNeuronSet($0, set: neuronSet.rawValue, config: m.config) }
            var s = PairSettings()
            s.count = count; s.safetyFraction = safetyFraction; s.maxTokens = maxTokens
            s.systemPrompt = systemPrompt; s.seed = seed; s.batchSize = batchSize
            let outcome = try PairBuilder.build(model: m, harmful: harmfulPrompts, harmless: harmlessPrompts,
                                                refusals: try PairBuilder.writtenRefusals(),
                                                overRefusals: try PairBuilder.writtenRefusals(file: "overrefusals.txt"), rejectedAblation: ablation, settings: s)
            // An empty pairs file would only fail later, in align; say here why nothing was kept.
            guard !outcome.pairs.isEmpty else {
                throw RuntimeError.invalidArgument("no preference pairs were kept from \(m.path) (\(outcome.stats.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", "))); nothing written to \(output)")
            }
            try JSONLines.write(outcome.pairs, to: output)
            let statsData = try JSONSerialization.data(withJSONObject: outcome.stats, options: [.prettyPrinted, .sortedKeys])
            try AtomicFile.write(statsData, to: output + ".stats.json")
            Progress.note("pairs: \(outcome.pairs.count) pairs → \(output) (\(outcome.stats.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", ")))")
        }
    }

    /// `--from`: every row must read and tokenise; the kept lines are written as they were.
    func copyPairs(_ source: String, model m: LanguageModel) throws {
        let loaded = try PreferenceFile.load(source)
        _ = try PreferenceFile.readExamples(source, model: m)
        guard let data = FileManager.default.contents(atPath: source) else { throw RuntimeError.missingFile(path: source) }
        let lines = data.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false)
        var out = Data()
        for row in loaded.rows { out.append(contentsOf: lines[row.line - 1]); out.append(UInt8(ascii: "\n")) }
        try AtomicFile.write(out, to: output)
        var stats: [String: Any] = ["source": source, "pairs": loaded.rows.count, "skipped": loaded.skipped.count]
        for f in PreferenceFile.Format.allCases { stats["format_" + f.rawValue] = loaded.rows.filter { $0.format == f }.count }
        for k in Set(loaded.rows.map { $0.pair.kind ?? "unlabelled" }) { stats["kind_" + k] = loaded.rows.filter { ($0.pair.kind ?? "unlabelled") == k }.count }
        try AtomicFile.write(try JSONSerialization.data(withJSONObject: stats, options: [.prettyPrinted, .sortedKeys]), to: output + ".stats.json")
        Progress.note("pairs: \(loaded.rows.count) pairs from \(source) → \(output)")
    }
}
