import Alignment
import ArgumentParser
import Evaluation
import Foundation
import Runtime
import Transformer

/// A run that kept producing non-finite losses or gradients; mapped to exit code 5.
struct TrainingNumericalError: Error, CustomStringConvertible {
    var reason: String, checkpoint: String?
    var description: String {
        "training stopped: \(reason); "
            + (checkpoint.map { "the last good checkpoint is kept in \($0)" } ?? "no checkpoint was written") + "; nothing was exported"
    }
}

struct AlignCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "align",
        abstract: "DPO-train a model on preference pairs, optionally freezing/ablating or only training safety neurons.",
        discussion: """
        PAIRS is JSON Lines, one pair per line, in any of: {"prompt", "chosen", "rejected"} strings (optional \
        "system"); TRL's conversational format (prompt, chosen, rejected as {role, content} message lists, a \
        system turn allowed, or no prompt and a shared leading conversation); PKU-SafeRLHF rows {"prompt", \
        "response_0", "response_1", "safer_response_id"} (better_response_id as the fallback), chosen = safer. \
        Pairs are tokenised with the model's chat template (TRL's conversational convention); rows with identical \
        answers are skipped, and a summary goes to stderr. With --neurons the neurons' MLP slices (gate_proj row j, \
        up_proj row j, down_proj column j of layer l) stay bit-identical and are ablated in the policy forward \
        per --ablate; with --train-only-neurons only those slices train (SN-Tune). Without --neurons: plain DPO.
        The output is a Hugging Face f32 model folder with metrics.jsonl and training_args.json, written \
        atomically once training is complete. Checkpoints (and the cached reference log-probs) live in \
        OUTPUT.checkpoint/; --resume continues a killed run to the same final weights. Once the model folder is \
        written and read back bit-identical, the checkpoint (weights + AdamW moments, 12 bytes per parameter) is \
        deleted unless --keep-checkpoint is given; --resume on a finished OUTPUT with the same settings does nothing.
        """)

    @OptionGroup var model: ModelOptions
    @Option(help: "Preference pairs (.jsonl).") var pairs: String
    @Option(help: "The model folder to write.") var output: String
    @Option(help: "A neurons.json from `identify`.") var neurons: String?
    @Option(help: "Which set of the neurons file.") var neuronSet: NeuronSetChoice = .union
    @Option(help: "Ablate the neurons in the policy forward: always, never, or dropout:P (a seeded random fraction P of steps).")
    var ablate = "always"
    @Flag(help: "SN-Tune: train only the neurons' slices; everything else stays bit-identical.") var trainOnlyNeurons = false
    @Option(help: "DPO beta.") var beta = 0.1
    @Option(help: "DPO loss.") var loss: DPOLossType = .sigmoid
    @Option(help: "RPO alpha (weight of the chosen NLL term; 0 = off).") var rpoAlpha = 0.0
    @Option(help: "RPO alpha in the steps whose policy is ablated (default: --rpo-alpha).") var ablatedRpoAlpha: Double?
    @Option(help: "Reference model: ablated (same ablation as the policy each step) or intact.") var reference: ReferenceChoice = .ablated
    @Option(help: "Optimizer.") var optimizer: OptimizerKind = .adamw
    @Option(help: "Peak learning rate.") var lr = 5e-6
    @Option(help: "Decoupled weight decay (AdamW) / L2 (SGD); norms and biases are not decayed.") var weightDecay = 0.05
    @Option(help: "LR schedule after warmup.") var schedule: LRScheduleKind = .cosine
    @Option(help: "Linear warmup steps.") var warmupSteps = 0
    @Option(help: "Passes over the pairs (ignored with --steps).") var epochs = 3
    @Option(help: "Optimizer steps (overrides --epochs).") var steps: Int?
    @Option(help: "Pairs per micro-batch.") var batchSize = 8
    @Option(help: "Micro-batches per optimizer step.") var gradAccum = 1
    @Option(help: "Clip the global gradient norm to this (0 = no clipping).") var maxGradNorm = 1.0
    @Option(help: "Truncate prompt+completion to this many tokens (prompt start cut first).") var maxLength = 512
    @Option(help: "Seed of the data order and ablation dropout.") var seed: UInt64 = 0
    @Option(help: "Write a checkpoint every N steps (0 = only at the end).") var saveEvery = 100
    @Flag(help: "Continue from OUTPUT.checkpoint/ (same settings required).") var resume = false
    @Flag(help: "Keep OUTPUT.checkpoint/ after the model folder is written and verified.") var keepCheckpoint = false
    @Option(help: "A folder of reference log-probs shared between runs: one file per (model, pairs, max length, batch size, reference state), so runs on the same data skip the reference pass.")
    var referenceCache: String?
    @Option(help: "AdamW moment storage: f32 (PyTorch's AdamW exactly), bf16 (stochastic rounding, half the state), or auto (f32 when the memory plan fits, else bf16).")
    var moments: MomentChoice = .auto
    @Option(help: "Memory budget in GiB (default: 90% of this machine's memory). The run plans moments and layer recomputation to fit it, prints the plan, and refuses to start when nothing fits.")
    var memoryBudget: Double?

    @Option(help: "Which trainer runs the steps: swift (this binary, CPU) or trl (TRL's DPOTrainer through python/safeneuron_trl, for GPUs; needs torch, transformers, trl). Same freeze, ablation, seed and loss; Swift-only flags (--moments, --memory-budget, --save-every, --reference-cache) do not apply to trl.")
    var trainer: TrainerChoice = .swift

    enum MomentChoice: String, ExpressibleByArgument, CaseIterable { case auto, f32, bf16 }
    enum TrainerChoice: String, ExpressibleByArgument, CaseIterable { case swift, trl }

    /// Every setting that determines the result; a resumed run must match it exactly.
    func settings(modelPath: String) -> [String: Any] {
        var s: [String: Any] = [
            "model": modelPath, "pairs": pairs, "output": output, "neuron_set": neuronSet.rawValue, "ablate": ablate,
            "train_only_neurons": trainOnlyNeurons, "beta": beta, "loss_type": loss.rawValue, "rpo_alpha": rpoAlpha,
            "reference": reference.rawValue, "optimizer": optimizer.rawValue, "learning_rate": lr, "weight_decay": weightDecay,
            "lr_scheduler_type": schedule.rawValue, "warmup_steps": warmupSteps, "num_train_epochs": epochs,
            "per_device_train_batch_size": batchSize, "gradient_accumulation_steps": gradAccum,
            "max_grad_norm": maxGradNorm, "max_length": maxLength, "seed": seed,
        ]
        // The content, not just the path, decides whether cached reference log-probs and checkpoints still apply.
        func fnv(_ path: String) -> String {
            guard let d = FileManager.default.contents(atPath: path) else { return "unreadable" }
            var h: UInt64 = 0xcbf2_9ce4_8422_2325
            for b in d { h = (h ^ UInt64(b)) &* 0x100_0000_01b3 }
            return String(h, radix: 16)
        }
        s["pairs_fnv1a64"] = fnv(pairs)
        if let neurons { s["neurons_fnv1a64"] = fnv(neurons) }
        s["neurons"] = neurons ?? NSNull()
        s["max_steps"] = steps ?? NSNull()
        if let ablatedRpoAlpha { s["ablated_rpo_alpha"] = ablatedRpoAlpha }
        return s
    }

    func trainerConfig() throws -> TrainerConfig {
        var c = TrainerConfig()
        guard beta > 0, beta.isFinite else { throw RuntimeError.invalidArgument("--beta must be positive") }
        guard rpoAlpha >= 0, rpoAlpha.isFinite else { throw RuntimeError.invalidArgument("--rpo-alpha must be ≥ 0") }
        c.dpo = DPOConfig(beta: beta, lossType: loss, rpoAlpha: rpoAlpha > 0 ? rpoAlpha : nil)
        if let a = ablatedRpoAlpha {
            guard a >= 0, a.isFinite else { throw RuntimeError.invalidArgument("--ablated-rpo-alpha must be ≥ 0") }
            c.ablatedRPOAlpha = a
        }
        c.optimizer = optimizer
        guard lr >= 0, lr.isFinite else { throw RuntimeError.invalidArgument("--lr must be ≥ 0") }
        c.learningRate = lr
        guard weightDecay >= 0, weightDecay.isFinite else { throw RuntimeError.invalidArgument("--weight-decay must be ≥ 0") }
        c.weightDecay = weightDecay
        c.schedule = schedule
        guard warmupSteps >= 0 else { throw RuntimeError.invalidArgument("--warmup-steps must be ≥ 0") }
        c.warmupSteps = warmupSteps
        guard epochs > 0 else { throw RuntimeError.invalidArgument("--epochs must be positive") }
        c.epochs = epochs
        if let steps { guard steps > 0 else { throw RuntimeError.invalidArgument("--steps must be positive") } }
        c.maxSteps = steps
        guard batchSize > 0, gradAccum > 0 else { throw RuntimeError.invalidArgument("--batch-size and --grad-accum must be positive") }
        c.batchSize = batchSize; c.gradientAccumulationSteps = gradAccum
        guard maxGradNorm >= 0, maxGradNorm.isFinite else { throw RuntimeError.invalidArgument("--max-grad-norm must be ≥ 0") }
        c.maxGradNorm = maxGradNorm > 0 ? maxGradNorm : nil
        guard maxLength >= 2 else { throw RuntimeError.invalidArgument("--max-length must be ≥ 2") }
        c.maxLength = maxLength
        c.seed = seed
        guard saveEvery >= 0 else { throw RuntimeError.invalidArgument("--save-every must be ≥ 0") }
        guard let ab = AblationMode(parsing: ablate) else {
            throw RuntimeError.invalidArgument("--ablate must be always, never or dropout:P with 0 ≤ P ≤ 1")
        }
        c.referenceAblated = reference == .ablated
        if neurons == nil {
            guard !trainOnlyNeurons else { throw RuntimeError.invalidArgument("--train-only-neurons needs --neurons") }
            c.ablation = .none
        } else {
            // SN-Tune trains the neurons themselves, so zeroing their activations would hide them from the loss.
            c.ablation = trainOnlyNeurons ? .none : ab
            c.maskMode = trainOnlyNeurons ? .trainOnly : .freeze
        }
        return c
    }

    func run() throws {
        try runReporting {
            var config = try trainerConfig()
            if trainer == .trl { try TRLTrainer.run(self); return }
            let m = try model.load()
            let set = try neurons.map { try loadNeuronSet($0, set: neuronSet.rawValue, config: m.config) }
            let examples = try Self.readPairs(pairs, model: m)
            // Keeping every layer's activations saves the recompute forward (a quarter of the GEMM work)
            // when the largest micro-batch's activations fit a modest budget; the results are identical.
            let plan = try memoryPlan(config: config, examples: examples, model: m.config)
            config.recomputeLayers = plan.recomputeLayers
            config.moments = plan.moments == .f32 ? nil : plan.moments
            Progress.note(String(format: "memory plan (budget %.1f GiB): %@ moments, %@\n", Double(budgetBytes) / Double(1 << 30),
                                 plan.moments.rawValue, plan.recomputeLayers ? "layers recomputed in backward" : "activations kept for backward")
                          + plan.summary)

            let outURL = URL(fileURLWithPath: output)
            let ckpt = outURL.deletingLastPathComponent().appendingPathComponent(outURL.lastPathComponent + ".checkpoint")
            let fm = FileManager.default
            var settingsObj = settings(modelPath: model.path)
            // Only a non-default format is recorded, so runs from before bf16 moments still resume.
            if config.momentFormat != .f32 { settingsObj["moments"] = config.momentFormat.rawValue }
            let settingsData = try JSONSerialization.data(withJSONObject: settingsObj, options: [.sortedKeys, .withoutEscapingSlashes])
            let argsPath = ckpt.appendingPathComponent("settings.json").path
            if resume, !fm.fileExists(atPath: ckpt.path), try Self.finishedEarlier(output, settings: settingsObj) {
                Progress.note("\(output): finished earlier with the same settings (its checkpoint was removed); nothing to do")
                return
            }
            if fm.fileExists(atPath: ckpt.path) {
                guard resume else {
                    throw RuntimeError.invalidArgument("\(ckpt.path) exists (an unfinished or finished run): pass --resume to continue it, or remove it")
                }
                if let old = fm.contents(atPath: argsPath), old != settingsData {
                    throw RuntimeError.invalidArgument("--resume: the settings differ from those of the run in \(ckpt.path) (see its settings.json)")
                }
            }
            try fm.createDirectory(at: ckpt, withIntermediateDirectories: true)
            try AtomicFile.write(settingsData, to: argsPath)

            // The trainer (gradients, moments, activations) is dropped before the export and its read-back, which
            // need memory of their own; `finished` keeps what the summary needs.
            var holder: DPOTrainer? = try DPOTrainer(weights: m.weights, examples: examples, neurons: set, config: config)
            let metricsPath = ckpt.appendingPathComponent("metrics.jsonl").path
            var finished = (totalSteps: 0, stepsPerEpoch: 0, referenceStates: 0)
            do {
                let trainer = holder!
                let manifest = ckpt.appendingPathComponent("state/manifest.json").path
                let refPath = ckpt.appendingPathComponent("reference_logps.json").path
                var lastGood: String? = nil
                if resume && fm.fileExists(atPath: manifest) {
                    try trainer.resume(ckpt.appendingPathComponent("state"))
                    lastGood = ckpt.appendingPathComponent("state").path
                    Progress.note("resumed from \(ckpt.path) at step \(trainer.step)/\(trainer.totalSteps)")
                } else if resume, let d = fm.contents(atPath: refPath),
                          let obj = try? JSONDecoder().decode([String: [[Double]]].self, from: d),
                          let c = obj["chosen"], let r = obj["rejected"] {
                    try trainer.setReferenceLogProbs(chosen: c, rejected: r)
                    Progress.note("using the cached reference log-probs in \(refPath)")
                }
                if trainer.referenceLogProbs.chosen.isEmpty {
                    let t0 = Date()
                    let shared = try referenceCache.map { try sharedReferenceFiles(folder: $0, modelPath: m.path, examples: examples, states: trainer.referenceStates.count) } ?? []
                    var known: [Int: (chosen: [Double], rejected: [Double])] = [:]
                    for (state, file) in shared.enumerated() {
                        if let d = fm.contents(atPath: file), let obj = try? JSONDecoder().decode([String: [Double]].self, from: d),
                           let c = obj["chosen"], let r = obj["rejected"] {
                            known[state] = (c, r)
                            Progress.note("reference log-probs of state \(state) from \(file)")
                        }
                    }
                    try trainer.computeReferenceLogProbs(known: known)
                    let ref = trainer.referenceLogProbs
                    for (state, file) in shared.enumerated() where known[state] == nil {
                        try fm.createDirectory(atPath: (file as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
                        try AtomicFile.write(try JSONEncoder().encode(["chosen": ref.chosen[state], "rejected": ref.rejected[state]]), to: file)
                    }
                    try AtomicFile.write(try JSONEncoder().encode(["chosen": ref.chosen, "rejected": ref.rejected]), to: refPath)
                    Progress.note("reference log-probs of \(examples.count) pairs × \(ref.chosen.count) state(s) in \(String(format: "%.1f", Date().timeIntervalSince(t0)))s")
                }

                // Metrics past the checkpoint's step are regenerated by the resumed run.
                var kept: [Any] = []
                if fm.fileExists(atPath: metricsPath) {
                    kept = try JSONLines.readObjects(metricsPath, tolerateTornTail: true).filter { ($0["step"] as? Int ?? .max) <= trainer.step }
                }
                try JSONLines.write(kept, to: metricsPath)
                let appender = try JSONLAppender(path: metricsPath)

                let progress = Progress("align", total: max(1, trainer.totalSteps - trainer.step))
                while !trainer.isFinished {
                    let t0 = Date()
                    var sm = try trainer.trainStep()
                    let dt = Date().timeIntervalSince(t0)
                    let tps = Double(trainer.lastStepTokens) / max(dt, 1e-9)
                    sm.values["tokens_per_second"] = tps
                    if config.dpo.rpoAlpha == nil { sm.values["nll_loss"] = nil }
                    try appender.append(try JSONSerialization.jsonObject(with: Data(sm.jsonLine.utf8)))
                    if sm.skipped {
                        Progress.note("step \(sm.step): non-finite loss or gradient, update skipped")
                        if trainer.consecutiveSkips >= 3 {
                            throw TrainingNumericalError(
                                reason: "\(trainer.consecutiveSkips) consecutive steps up to step \(sm.step) had a non-finite loss or gradient",
                                checkpoint: lastGood)
                        }
                    }
                    progress.advance(unit: "step", fields: [
                        ("step", "\(sm.step)/\(trainer.totalSteps)"),
                        ("loss", String(format: "%.4f", sm.values["loss"] ?? .nan)),
                        ("acc", String(format: "%.2f", sm.values["rewards/accuracies"] ?? .nan)),
                        ("tok/s", String(format: "%.0f", tps)),
                    ], force: sm.step == trainer.totalSteps)
                    // A skipped step leaves weights and moments untouched, so saving after it is still a good state.
                    if trainer.isFinished || (saveEvery > 0 && sm.step % saveEvery == 0) {
                        try checkFinite(m.weights, lastGood)
                        try trainer.save(ckpt.appendingPathComponent("state"))
                        lastGood = ckpt.appendingPathComponent("state").path
                    }
                }
                progress.finish()
                try checkFinite(m.weights, lastGood)
                finished = (trainer.totalSteps, trainer.stepsPerEpoch, trainer.referenceLogProbs.chosen.count)
            }
            holder = nil

            var args = settingsObj
            args["command_line"] = CommandLine.arguments
            args["resumed"] = resume
            args["total_steps"] = finished.totalSteps
            args["steps_per_epoch"] = finished.stepsPerEpoch
            args["num_pairs"] = examples.count
            args["neuron_count"] = set?.count ?? 0
            args["mask_mode"] = config.maskMode.rawValue
            args["reference_states"] = finished.referenceStates
            args["save_every"] = saveEvery
            args["adam_beta1"] = config.adamBeta1; args["adam_beta2"] = config.adamBeta2; args["adam_epsilon"] = config.adamEpsilon
            args["recompute_layers"] = config.recomputeLayers
            args["moments"] = config.momentFormat.rawValue
            args["memory_plan"] = plan.json
            let argsData = try JSONSerialization.data(withJSONObject: args, options: [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes])
            let metrics = fm.contents(atPath: metricsPath) ?? Data()
            try m.exportHF(to: output, dtype: .f32, weights: m.weights,
                           extraFiles: ["metrics.jsonl": metrics, "training_args.json": argsData])
            if keepCheckpoint {
                Progress.note("wrote \(output) (checkpoint and reference cache kept in \(ckpt.path))")
            } else {
                try Self.verifyExport(output, equals: m.weights)
                try fm.removeItem(at: ckpt)
                Progress.note("wrote \(output), read back bit-identical; removed \(ckpt.path)")
            }
        }
    }

    /// The memory budget in bytes: --memory-budget, else 90% of MemTotal.
    var budgetBytes: Int {
        if let memoryBudget { return Int(memoryBudget * Double(1 << 30)) }
        return Int(Double(Self.physicalMemoryBytes()) * 0.9)
    }

    static func physicalMemoryBytes() -> Int {
        if let s = try? String(contentsOfFile: "/proc/meminfo", encoding: .utf8),
           let line = s.split(separator: "\n").first(where: { $0.hasPrefix("MemTotal:") }),
           let kb = Int(line.split(separator: " ").dropFirst().first ?? "") { return kb * 1024 }
        return Int(ProcessInfo.processInfo.physicalMemory)
    }

    /// Plans moments and recomputation for the largest micro-batch of these pairs. Kept activations are used only
    /// up to 3 GiB even when more would fit: past that the recompute forward costs less than the memory traffic.
    func memoryPlan(config: TrainerConfig, examples: [PreferenceExample], model c: ModelConfig) throws -> TrainingMemoryPlan {
        guard budgetBytes > 0 else { throw RuntimeError.invalidArgument("--memory-budget must be positive") }
        let cap = config.maxLength ?? .max
        let sized = examples.map { e -> (tokens: Int, rows: Int) in
            let chosen = min(cap, e.chosenIds.count), rejected = min(cap, e.rejectedIds.count)
            let rows = min(chosen - 1, e.chosenIds.count - e.promptIds.count) + min(rejected - 1, e.rejectedIds.count - e.promptIds.count)
            return (chosen + rejected, max(2, rows))
        }.sorted { $0.tokens > $1.tokens }.prefix(config.batchSize)
        let tokens = sized.reduce(0) { $0 + $1.tokens }, rows = sized.reduce(0) { $0 + $1.rows }
        let fixed: MomentFormat? = moments == .auto ? nil : (moments == .f32 ? .f32 : .bf16)
        let keepFits = TrainingModel.keptActivationBytes(tokens: tokens, config: c) <= 3 << 30
        var plan = try TrainingMemoryPlan.choose(budgetBytes: budgetBytes, config: c, optimizer: config.optimizer,
                                                 moments: fixed, tokens: tokens, completionRows: rows)
        if !plan.recomputeLayers && !keepFits {
            plan = TrainingMemoryPlan.estimate(config: c, optimizer: config.optimizer, moments: plan.moments,
                                               recomputeLayers: true, tokens: tokens, completionRows: rows)
        }
        return plan
    }

    /// Reads and tokenises the pairs; every error names file:line.
    /// One cache file per reference state, named by a hash of everything the state's log-probs depend on:
    /// the model's content, the tokenised pairs, truncation, batch size, and (ablated state) the neuron set.
    func sharedReferenceFiles(folder: String, modelPath: String, examples: [PreferenceExample], states: Int) throws -> [String] {
        var h = SHA256()
        h.update(Data(try SHA256.hexOfModel(path: modelPath).utf8))
        h.update(Data("\(maxLength) \(batchSize)".utf8))
        for e in examples { h.update(Data("\(e.promptIds)|\(e.chosenIds)|\(e.rejectedIds)\n".utf8)) }
        let base = h.hexDigest()
        var ablated = SHA256()
        ablated.update(Data(base.utf8))
        if let neurons, let d = FileManager.default.contents(atPath: neurons) { ablated.update(d) }
        ablated.update(Data(neuronSet.rawValue.utf8))
        let names = [base, ablated.hexDigest()]
        return (0..<states).map { folder + "/" + String(names[$0].prefix(32)) + ($0 == 0 ? "-intact" : "-ablated") + ".json" }
    }

    /// The exported folder loads back to exactly the trained weights (every parameter, bit for bit): only then
    /// may the checkpoint that could recreate them go.
    static func verifyExport(_ folder: String, equals weights: ModelWeights) throws {
        let back = try LanguageModel.load(folder).weights
        let mine = Dictionary(uniqueKeysWithValues: weights.namedParameters.map { ($0.0, $0.1) })
        let theirs = back.namedParameters
        guard theirs.count == mine.count else {
            throw RuntimeError.badFile(path: folder, reason: "read back \(theirs.count) tensors, trained \(mine.count); checkpoint kept")
        }
        for (name, t) in theirs {
            guard let w = mine[name], w.count == t.count,
                  memcmp(w.pointer, t.pointer, t.count * MemoryLayout<Float>.stride) == 0 else {
                throw RuntimeError.badFile(path: folder, reason: "tensor \(name) differs from the trained weights when read back; checkpoint kept")
            }
        }
    }

    /// A complete output folder whose training_args.json records these settings.
    static func finishedEarlier(_ output: String, settings: [String: Any]) throws -> Bool {
        let fm = FileManager.default
        guard fm.fileExists(atPath: output + "/model.safetensors"),
              let d = fm.contents(atPath: output + "/training_args.json"),
              let args = try? JSONSerialization.jsonObject(with: d) as? [String: Any] else { return false }
        // Compared as JSON text, the form both were written in (Swift values and decoded NSNumbers never compare equal).
        func json(_ v: Any) -> Data? { try? JSONSerialization.data(withJSONObject: ["v": v], options: [.sortedKeys]) }
        for (k, v) in settings {
            guard let old = args[k], let a = json(old), a == json(v) else {
                throw RuntimeError.invalidArgument("--resume: \(output) is finished, with other settings ('\(k)' differs; see its training_args.json)")
            }
        }
        return true
    }

    static func readPairs(_ path: String, model m: LanguageModel) throws -> [PreferenceExample] {
        try readLabelledPairs(path, model: m).map(\.example)
    }

    /// The pairs with their optional `kind` field ("safety" or "general", as `pairs` writes them), from any format
    /// `PreferenceFile` reads (ours, TRL standard/conversational, PKU-SafeRLHF).
    static func readLabelledPairs(_ path: String, model m: LanguageModel) throws -> [(example: PreferenceExample, kind: String?)] {
        try PreferenceFile.readExamples(path, model: m)
    }
}

/// Poisoned weights are never checkpointed or exported.
func checkFinite(_ w: ModelWeights, _ lastGood: String?) throws {
    for (name, t) in w.namedParameters {
        let p = t.pointer
        for i in 0..<t.count where !p[i].isFinite {
            throw TrainingNumericalError(reason: "weight \(name)[\(i)] became \(p[i])", checkpoint: lastGood)
        }
    }
}
