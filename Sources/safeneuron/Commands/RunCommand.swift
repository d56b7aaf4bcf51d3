import ArgumentParser
import Foundation
import Pipeline
import Runtime

struct RunCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "The whole SafeNeuron experiment: identify, build pairs, train every method, attack, evaluate, report.",
        discussion: """
        Methods: original, dpo (plain DPO), sn-tune (only the safety neurons train), safeneuron (the paper's \
        Algorithm 1: union set frozen and zeroed in every training pass), safeneuron-freeze (frozen only), \
        safeneuron-dropout (frozen, zeroed in a random half of the steps). Each SafeNeuron variant runs --rounds \
        rounds. Every final model is attacked: its own neurons are re-identified and StrongREJECT is measured at \
        ORI, ES(SN−), SAS(SN−), FULL(SN−) and a top-k sweep. Defaults live in config/run-defaults.yaml; --config \
        overrides them; --full uses the paper's settings. Stages are skipped when their outputs exist, so \
        rerunning the same command resumes a killed run.
        """)

    @Option(help: "A YAML file of settings (see config/run-defaults.yaml).") var config: String?
    @Option(help: "The model (default: the set-up's SmolLM2-135M-Instruct GGUF).") var model: String?
    @Option(help: "The run folder (default runs/default).") var output: String?
    @Option(help: "Comma-separated methods.") var methods: String?
    @Option(help: "SafeNeuron rounds.") var rounds: Int?
    @Option(help: "Evaluate only the first N prompts (quick checks; the default is all).") var limit: Int?
    @Option(help: ArgumentHelp("Comma-separated training seeds, e.g. 0,1,2: every method is trained and attacked once per seed and the report gives mean ± sd per cell. The first seed is the base seed (pairs, identification, the single-seed layout); the others go under methods/<method>/seed<s>/ and attack/<method>/seed<s>/.", valueName: "seeds"))
    var seeds: String?
    @Flag(help: "The paper's settings: 3 epochs, lr 5e-6, β 0.1, 3 rounds.") var full = false
    @Flag(help: "Keep every training's checkpoint (1.6 GB each on the default model) after its model folder is verified.")
    var keepCheckpoints = false
    @Option(help: "Trainer of the align stages: swift (this binary) or trl (TRL's DPOTrainer through python/safeneuron_trl, for GPUs; torch, transformers and trl must be installed). Identification, attacks, evaluation and the report stay here.")
    var trainer: AlignCommand.TrainerChoice?

    func run() throws {
        try runReporting {
            var overrides: [String: Any] = [:]
            if let model { overrides["model"] = model }
            if let output { overrides["output"] = output }
            if let methods { overrides["methods"] = methods.split(separator: ",").map { String($0).trimmingCharacters(in: .whitespaces) } }
            if let rounds { overrides["rounds"] = rounds }
            if let limit { overrides["eval.limit"] = limit }
            if keepCheckpoints { overrides["keep_checkpoints"] = true }
            if let trainer { overrides["train.trainer"] = trainer.rawValue }
            if let seeds {
                let list = seeds.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
                guard !list.isEmpty, list.allSatisfy({ Int($0).map { $0 >= 0 } ?? false }) else {
                    throw ValidationError("--seeds: expected comma-separated non-negative integers, got '\(seeds)'")
                }
                guard Set(list.compactMap { Int($0) }).count == list.count else { throw ValidationError("--seeds: a seed is listed twice") }
                overrides["seeds"] = list.compactMap { Int($0) }
            }
            var cfg = try RunConfig.load(userFile: config, full: full, overrides: overrides)
            if !cfg.output.hasPrefix("/") { cfg.output = FileManager.default.currentDirectoryPath + "/" + cfg.output }
            if !FileManager.default.fileExists(atPath: cfg.model) { throw RuntimeError.missingFile(path: cfg.model) }
            Progress.note("run: \(cfg.methods.joined(separator: ", ")) on \(cfg.model) → \(cfg.output)")
            try RunPipeline(config: cfg).run()
        }
    }
}
