import Foundation
import Runtime

/// `align --trainer trl`: the same training run by TRL's DPOTrainer through the bridge in `python/safeneuron_trl`
/// (same freeze, ablation schedule, seed semantics, loss and data order; see its README), for machines with GPUs.
/// The model goes in as a Hugging Face folder (a GGUF is converted first, next to the output) and comes back as
/// one; everything else stays in this binary.
enum TRLTrainer {
    /// The flags both trainers share, passed through unchanged.
    static func arguments(_ a: AlignCommand, hfModel: String) -> [String] {
        var args = ["-m", "safeneuron_trl", "align", "--model", hfModel, "--pairs", a.pairs, "--output", a.output,
                    "--ablate", a.ablate, "--beta", "\(a.beta)", "--loss", a.loss.rawValue, "--rpo-alpha", "\(a.rpoAlpha)",
                    "--reference", a.reference.rawValue, "--optimizer", a.optimizer.rawValue, "--lr", "\(a.lr)",
                    "--weight-decay", "\(a.weightDecay)", "--schedule", a.schedule.rawValue, "--warmup-steps", "\(a.warmupSteps)",
                    "--epochs", "\(a.epochs)", "--batch-size", "\(a.batchSize)", "--grad-accum", "\(a.gradAccum)",
                    "--max-grad-norm", "\(a.maxGradNorm)", "--max-length", "\(a.maxLength)", "--seed", "\(a.seed)"]
        if let n = a.neurons { args += ["--neurons", n, "--neuron-set", a.neuronSet.rawValue] }
        if a.trainOnlyNeurons { args.append("--train-only-neurons") }
        if let s = a.steps { args += ["--steps", "\(s)"] }
        if let r = a.ablatedRpoAlpha { args += ["--ablated-rpo-alpha", "\(r)"] }
        return args
    }

    /// The interpreter (`$SAFENEURON_PYTHON`, else python3) and an environment whose PYTHONPATH also holds the
    /// checkout's `python/` folder, so the bridge runs without being pip-installed.
    static func interpreter() -> (path: String, environment: [String: String]) {
        var env = ProcessInfo.processInfo.environment
        let python = env["SAFENEURON_PYTHON"] ?? "python3"
        let bridge = DataPaths.root.appendingPathComponent("python").path
        env["PYTHONPATH"] = [bridge, env["PYTHONPATH"]].compactMap { $0 }.filter { !$0.isEmpty }.joined(separator: ":")
        return (python, env)
    }

    static func run(_ a: AlignCommand) throws {
        let fm = FileManager.default
        if a.resume, fm.fileExists(atPath: a.output + "/model.safetensors"),
           let d = fm.contents(atPath: a.output + "/training_args.json"),
           let args = try? JSONSerialization.jsonObject(with: d) as? [String: Any], args["trainer"] as? String == "trl" {
            Progress.note("\(a.output): finished earlier by the TRL trainer; nothing to do")
            return
        }
        let (python, env) = interpreter()
        try check(python: python, environment: env)
        var hfModel = a.model.path
        var isDir: ObjCBool = false
        if !(fm.fileExists(atPath: hfModel, isDirectory: &isDir) && isDir.boolValue) {
            // The bridge loads Hugging Face folders only: convert once, beside the output, and reuse it on resume.
            let converted = a.output + ".hf-input"
            if !fm.fileExists(atPath: converted + "/model.safetensors") {
                Progress.note("align --trainer trl: converting \(hfModel) to a Hugging Face folder in \(converted)")
                let m = try LanguageModel.load(hfModel)
                try m.exportHF(to: converted, dtype: .f32)
            }
            hfModel = converted
        }
        let argv = arguments(a, hfModel: hfModel)
        Progress.note("align --trainer trl: \(python) \(argv.joined(separator: " "))")
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = [python] + argv
        p.environment = env
        p.standardInput = FileHandle.nullDevice
        try p.run()
        p.waitUntilExit()
        guard p.terminationReason == .exit, p.terminationStatus == 0 else {
            throw RuntimeError.io(path: "python -m safeneuron_trl align",
                                  reason: "the TRL trainer failed (\(p.terminationReason == .exit ? "exit \(p.terminationStatus)" : "signal \(p.terminationStatus)"))")
        }
        // What comes back must load here like any model folder.
        let back = try LanguageModel.load(a.output)
        Progress.note("wrote \(a.output) with the TRL trainer (\(back.config.numHiddenLayers) layers, read back)")
    }

    /// torch, transformers and trl importable, else a clear error saying how to get them.
    static func check(python: String, environment: [String: String]) throws {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = [python, "-c", "import torch, transformers, trl, safeneuron_trl"]
        p.environment = environment
        let err = Pipe()
        p.standardError = err
        p.standardOutput = FileHandle.nullDevice
        do { try p.run() } catch {
            throw RuntimeError.invalidArgument("--trainer trl: cannot run \(python): \(error)")
        }
        let message = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        p.waitUntilExit()
        guard p.terminationStatus == 0 else {
            let last = message.split(separator: "\n").last.map(String.init) ?? "import failed"
            throw RuntimeError.invalidArgument("--trainer trl needs torch, transformers and trl in \(python) (\(last)); install them with `pip install ./python` from the checkout, or set SAFENEURON_PYTHON")
        }
    }
}
