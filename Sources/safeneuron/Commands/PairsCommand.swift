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
        """)

    @OptionGroup var model: ModelOptions
    @Option(help: "Harmful prompts: file or dataset name (default: harmbench + donotanswer's malicious_uses and discrimination/toxicity files).") var harmful: String?
    @Option(help: "Harmless prompts (default: data/harmless_identify.txt).") var harmless: String?
    @Option(help: "Where to write pairs.jsonl.") var output: String
    @Option(help: "Number of pairs.") var count = 200
    @Option(help: "Share of safety pairs.") var safetyFraction = 0.3
    @Option(help: "Most new tokens per generated response.") var maxTokens = 64
    @Option(help: "neurons.json whose set is pruned to obtain compliant answers.") var neurons: String?
    @Option(help: "Which set of --neurons to prune.") var neuronSet = "topk"
    @Option(help: "The safety system prompt used for the model's own refusals.")
    var systemPrompt = PairSettings().systemPrompt
    @Option(help: "Random seed.") var seed: UInt64 = 0
    @Option(help: "Prompts generated together.") var batchSize = 32

    func validate() throws {
        if count < 1 { throw ValidationError("--count must be ≥ 1") }
        if !(0...1).contains(safetyFraction) { throw ValidationError("--safety-fraction must be in [0, 1]") }
    }

    func run() throws {
        try runReporting {
            let m = try model.load()
            let harmfulPrompts = try harmfulPrompts(harmful)
            let harmlessPrompts = try harmlessPrompts(harmless)
            let ablation = try neurons.map { try loadNeuronSet($0, set: neuronSet, config: m.config) }
            var s = PairSettings()
            s.count = count; s.safetyFraction = safetyFraction; s.maxTokens = maxTokens
            s.systemPrompt = systemPrompt; s.seed = seed; s.batchSize = batchSize
            let outcome = try PairBuilder.build(model: m, harmful: harmfulPrompts, harmless: harmlessPrompts,
                                                refusals: try PairBuilder.writtenRefusals(),
                                                overRefusals: try PairBuilder.writtenRefusals(file: "overrefusals.txt"), rejectedAblation: ablation, settings: s)
            try JSONLines.write(outcome.pairs, to: output)
            let statsData = try JSONSerialization.data(withJSONObject: outcome.stats, options: [.prettyPrinted, .sortedKeys])
            try AtomicFile.write(statsData, to: output + ".stats.json")
            Progress.note("pairs: \(outcome.pairs.count) pairs → \(output) (\(outcome.stats.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", ")))")
        }
    }
}
