import ArgumentParser
import Evaluation
import Foundation
import Runtime
import Transformer

/// `--ablate-direction FILE` of the commands that run a model.
struct DirectionAblationOptions: ParsableArguments {
    @Option(help: ArgumentHelp("A direction.safetensors from `direction`: project its unit direction r out of the residual stream (x ← x − (x·r) r) at every position, before every layer, between attention and MLP, and before the final norm.", valueName: "file"))
    var ablateDirection: String?

    /// Sets the model's ablated direction when one was given.
    @discardableResult
    func apply(to m: LanguageModel) throws -> RefusalDirectionFile? {
        guard let ablateDirection else { return nil }
        let f = try m.ablateDirection(from: ablateDirection)
        Progress.note("ablating the direction of \(ablateDirection) (layer \(f.layer), position \(f.position - f.positions))")
        return f
    }
}

struct DirectionCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "direction",
        abstract: "Find the refusal direction: the difference in means of the residual stream between harmful and harmless prompts.",
        discussion: """
        Every prompt gets the chat template with the generation prompt. At each layer input (and the final residual \
        before the final norm) and each generation-prompt token (the tokens add_generation_prompt adds; SmolLM2: \
        "<|im_start|>assistant\\n"), the mean residual over harmless prompts is subtracted from the mean over harmful \
        ones. The file (format safeneuron.direction/1, see README) holds all of them as mean_diff [layers + 1, \
        positions, hidden] and the chosen one, unit-normalised, as direction. \
        --layer L takes layer L's input at the last generation-prompt token, averaged over all prompts. \
        --layer auto holds out a seeded 20% of the harmful prompts (at most --held-out) and of the harmless ones, \
        averages the rest, and ablates each candidate on the held-out harmful prompts: the layer inputs from 20% to \
        80% of the depth at the last position, then the 3 best layers at the other positions. Answers of \
        --max-tokens tokens are judged by the refusal string rules (minimum length max-tokens/3 words) plus the \
        fluency rule under the intact model (mean NLL > --fluency-threshold → degenerate); the candidate with the \
        most compliant answers wins among those whose compliant answers' mean NLL is within the threshold (ties: lower \
        NLL, then shallower layer). Use the file with --ablate-direction (generate, logprob, eval) or prune --direction.
        """)

    @OptionGroup var model: ModelOptions
    @Option(help: "Harmful prompts: a file or a built-in dataset name (default: harmbench + donotanswer's malicious_uses and discrimination/toxicity files).") var harmful: String?
    @Option(help: "Harmless prompts: a file (default: data/harmless_identify.txt).") var harmless: String?
    @Option(help: "Where to write direction.safetensors.") var output: String
    @Option(help: "auto, or a layer index (its input; the layer count means the final residual).") var layer: String = "auto"
    @Option(help: "Seed of the held-out split (--layer auto).") var seed: UInt64 = 0
    @Option(help: "At most this many held-out harmful prompts (--layer auto).") var heldOut = 64
    @Option(help: "New tokens per held-out answer (--layer auto).") var maxTokens = 24
    @Option(help: "Mean per-token NLL (nats) above which an answer is degenerate (--layer auto).") var fluencyThreshold = 3.0
    @Option(help: "Prompts per forward pass.") var batchSize = 16

    func validate() throws {
        if layer != "auto" && Int(layer) == nil { throw ValidationError("--layer must be auto or a layer index") }
        if let l = Int(layer), l < 0 { throw ValidationError("--layer must be ≥ 0") }
        if heldOut < 1 { throw ValidationError("--held-out must be ≥ 1") }
        if maxTokens < 1 { throw ValidationError("--max-tokens must be ≥ 1") }
        if !(fluencyThreshold > 0) { throw ValidationError("--fluency-threshold must be > 0") }
        if batchSize < 1 { throw ValidationError("--batch-size must be ≥ 1") }
    }

    func run() throws {
        try runReporting {
            let started = Date()
            let m = try model.load()
            let L = m.config.numHiddenLayers
            if let l = Int(layer), l > L {
                throw RuntimeError.invalidArgument("--layer \(l): the model has \(L) layers (0...\(L), \(L) = the final residual)")
            }
            let harmfulAll = try harmfulPrompts(harmful), harmlessAll = try harmlessPrompts(harmless)
            guard harmfulAll.count >= 2, harmlessAll.count >= 2 else {
                throw RuntimeError.invalidArgument("need at least 2 harmful and 2 harmless prompts (got \(harmfulAll.count) and \(harmlessAll.count))")
            }
            let gen = try RefusalDirection.generationPrompt(model: m, prompts: harmfulAll + harmlessAll)
            let auto = layer == "auto"
            var harmfulTrain = harmfulAll, harmlessTrain = harmlessAll
            var harmfulHeld: [String] = [], harmlessHeld: [String] = []
            if auto {
                let hs = DirectionSelection.split(count: harmfulAll.count, cap: heldOut, seed: seed)
                let ss = DirectionSelection.split(count: harmlessAll.count, cap: heldOut, seed: seed)
                (harmfulTrain, harmfulHeld) = (hs.rest.map { harmfulAll[$0] }, hs.heldOut.map { harmfulAll[$0] })
                (harmlessTrain, harmlessHeld) = (ss.rest.map { harmlessAll[$0] }, ss.heldOut.map { harmlessAll[$0] })
            }
            Progress.note("direction: \(harmfulTrain.count) harmful, \(harmlessTrain.count) harmless prompts averaged at the last \(gen.count) tokens \(gen.tokens)"
                          + (auto ? "; \(harmfulHeld.count) harmful and \(harmlessHeld.count) harmless held out" : ""))
            let means = try RefusalDirection.collectMeans(model: m, harmful: harmfulTrain, harmless: harmlessTrain,
                                                          positions: gen.count, batchSize: batchSize)
            guard let diff = means.meanDifference() else { throw RuntimeError.invalidArgument("no prompts were averaged") }
            var meta: [String: String] = [
                "model": m.displayName, "harmful_count": String(harmfulTrain.count), "harmless_count": String(harmlessTrain.count),
                "generation_prompt_tokens": "[" + gen.tokens.map(String.init).joined(separator: ",") + "]",
                "selection": auto ? "auto" : "fixed",
            ]
            var chosen = (layer: Int(layer) ?? 0, position: gen.count - 1)
            if auto {
                var sel = DirectionSelection()
                sel.maxNewTokens = maxTokens; sel.fluencyThreshold = fluencyThreshold
                let outcome = try sel.run(model: m, meanDiff: diff, positions: gen.count, heldOut: harmfulHeld, harmlessHeldOut: harmlessHeld)
                chosen = (outcome.chosen.layer, outcome.chosen.position)
                let report: [String: Any] = [
                    "seed": seed, "held_out_harmful": harmfulHeld.count, "held_out_harmless": harmlessHeld.count,
                    "max_tokens": maxTokens, "fluency_threshold": fluencyThreshold,
                    "baseline": try jsonObject(outcome.baseline), "chosen": try jsonObject(outcome.chosen),
                    "candidates": try outcome.candidates.map(jsonObject),
                ]
                meta["selection_report"] = String(decoding: try JSONSerialization.data(withJSONObject: report, options: [.sortedKeys]), as: UTF8.self)
                let b = outcome.baseline, k = outcome.chosen
                Progress.note(String(format: "direction: chose layer %d position %d: held-out compliance %d/%d (%.1f%%) vs %d/%d (%.1f%%) intact",
                                     k.layer, k.position - gen.count, k.complied, k.total, 100 * k.complianceRate,
                                     b.complied, b.total, 100 * b.complianceRate))
            }
            let file = try RefusalDirectionFile(meanDiff: diff, layers: L, positions: gen.count, hidden: m.config.hiddenSize,
                                                layer: chosen.layer, position: chosen.position, metadata: meta)
            try FileManager.default.createDirectory(at: URL(fileURLWithPath: output).deletingLastPathComponent(), withIntermediateDirectories: true)
            try file.write(to: output)
            Progress.note(String(format: "direction: layer %d, position %d → %@ (%.1fs)", chosen.layer, chosen.position - gen.count,
                                 output, Date().timeIntervalSince(started)))
        }
    }

    func jsonObject<T: Encodable>(_ v: T) throws -> Any {
        try JSONSerialization.jsonObject(with: JSONEncoder().encode(v))
    }
}
