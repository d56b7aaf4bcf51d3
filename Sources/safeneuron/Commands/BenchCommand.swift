import Alignment
import ArgumentParser
import Foundation
import Runtime
import SafetyNeurons
import Tensors
import Transformer

/// `safeneuron bench`: throughput of the workloads the toolkit runs, against this machine's sgemm rate.
///
/// Each workload runs in a child process of the same binary (hidden `--workload NAME`), so its peak
/// resident memory (VmHWM) is its own and one workload's allocations cannot slow the next.
struct BenchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract: "Measure sgemm, prefill, training-step, generation and identification throughput.",
        discussion: """
        Every workload runs in its own child process: one warm-up, then timed repetitions; the median is \
        reported as tokens/s (or prompts/s), achieved GFLOP/s (formulas in benchmarks/README.md) and as a \
        fraction of the sgemm rate measured in the same run (2048×2048×2048). Peak memory is the child's \
        VmHWM. Progress goes to stderr; a table (or, with --json, one JSON object per workload) to stdout \
        or --output. --quick shrinks repetitions and sizes to finish within about two minutes.
        """)

    @OptionGroup var model: ModelOptions
    @Flag(help: "One JSON object per workload instead of a table.") var json = false
    @Flag(help: "Fewer repetitions and smaller batches (about two minutes).") var quick = false
    @Option(help: "Write the results here instead of stdout.") var output: String?
    @Option(help: "Comma-separated workloads to run (default: all). Names: \(BenchWorkloads.all.joined(separator: ", ")).")
    var only: String?
    @Option(help: .hidden) var workload: String?
    @Option(help: "Measure a real model's size with seeded random weights instead of --model: \(ReferenceShapes.names.joined(separator: "|")). Workloads: \(BenchWorkloads.shapeWorkloads.joined(separator: ", ")).")
    var shape: String?
    @Option(help: "With --shape: DPO steps to time in shape_train (every step timed; frozen slices checked after the last).")
    var steps: Int?
    @Option(help: "With --shape: AdamW moments for shape_train (default: the memory plan's choice).")
    var moments: MomentFormat?
    @Option(help: "With --shape: memory budget in GiB for shape_train's plan (default: 90% of this machine's memory).")
    var memoryBudget: Double?

    var known: [String] { shape == nil ? BenchWorkloads.all : BenchWorkloads.shapeWorkloads }

    func validate() throws {
        if let shape, !ReferenceShapes.names.contains(shape) {
            throw ValidationError("unknown --shape \(shape); known: \(ReferenceShapes.names.joined(separator: ", "))")
        }
        if shape != nil, model.model != nil { throw ValidationError("--shape builds its own model; leave out --model") }
        if let steps, steps < 1 { throw ValidationError("--steps must be at least 1") }
        if let memoryBudget, !(memoryBudget > 0) { throw ValidationError("--memory-budget must be positive") }
        if let w = workload, !known.contains(w) { throw ValidationError("unknown workload \(w)") }
        for n in selected where !known.contains(n) {
            throw ValidationError("unknown workload \(n); known: \(known.joined(separator: ", "))")
        }
    }

    var selected: [String] {
        if shape != nil { return only.map { $0.split(separator: ",").map { String($0).trimmingCharacters(in: .whitespaces) } } ?? BenchWorkloads.shapeWorkloads }
        // decode_accuracy measures no speed (and takes minutes): only on request.
        guard let only else { return BenchWorkloads.all.filter { $0 != "decode_accuracy" && (quick ? $0 != "train_8x512" : true) } }
        return only.split(separator: ",").map { String($0).trimmingCharacters(in: .whitespaces) }
    }

    func run() throws {
        try runReporting {
            if let workload {
                let runner = BenchWorkloads(modelPath: shape == nil ? model.path : "", quick: quick, trainSteps: steps,
                                            momentChoice: moments, memoryBudgetBytes: budgetBytes)
                var record = try shape.map { try runner.runShape(workload, shape: $0) } ?? runner.run(workload)
                record["peak_rss_mib"] = BenchWorkloads.peakResidentMiB()
                try printJSON(record)
                return
            }
            try runAll()
        }
    }

    var budgetBytes: Int {
        if let memoryBudget { return Int(memoryBudget * Double(1 << 30)) }
        return Int(Double(AlignCommand.physicalMemoryBytes()) * 0.9)
    }

    private func runAll() throws {
        let exe = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
        let load = (try? String(contentsOfFile: "/proc/loadavg", encoding: .utf8))?
            .split(separator: " ").prefix(3).joined(separator: " ") ?? "?"
        Progress.note("bench: OpenBLAS core \(BLAS.coreName), \(Parallel.workers) workers, load average \(load)")
        var records: [[String: Any]] = []
        for name in selected {
            Progress.note("bench: \(name)…")
            var args = ["bench", "--workload", name]
            if let m = model.model { args += ["--model", m] }
            if quick { args.append("--quick") }
            if let shape { args += ["--shape", shape] }
            if let steps { args += ["--steps", "\(steps)"] }
            if let moments { args += ["--moments", moments.rawValue] }
            if let memoryBudget { args += ["--memory-budget", "\(memoryBudget)"] }
            let p = Process()
            p.executableURL = URL(fileURLWithPath: exe)
            p.arguments = args
            let pipe = Pipe()
            p.standardOutput = pipe
            try p.run()
            let data = pipe.fileHandleForReading.readDataToEndOfFile()
            p.waitUntilExit()
            guard p.terminationStatus == 0,
                  let obj = try? JSONSerialization.jsonObject(with: data) as? [String: Any] else {
                throw RuntimeError.invalidArgument("bench workload \(name) failed (exit \(p.terminationStatus))")
            }
            records.append(obj)
        }
        // Fractions need the reference rates, which come from other workloads of the same run.
        let sgemm = records.first { $0["workload"] as? String == "sgemm_2048" }?["gflops"] as? Double
        let prefill = records.first { $0["workload"] as? String == "forward_8x128" }?["gflops"] as? Double
        for i in records.indices {
            records[i]["blas_core"] = BLAS.coreName
            records[i]["load_average"] = load
            records[i]["quick"] = quick
            if let g = records[i]["gflops"] as? Double {
                if let sgemm, sgemm > 0 { records[i]["fraction_of_sgemm"] = g / sgemm }
                if let prefill, prefill > 0, (records[i]["workload"] as? String)?.hasPrefix("generate") == true {
                    records[i]["fraction_of_prefill"] = g / prefill
                }
            }
        }
        var text = ""
        if json {
            for r in records {
                let d = try JSONSerialization.data(withJSONObject: r, options: [.sortedKeys, .withoutEscapingSlashes])
                text += String(decoding: d, as: UTF8.self) + "\n"
            }
        } else {
            text += "OpenBLAS core \(BLAS.coreName), load average \(load)\(quick ? ", --quick" : "")\n"
            // Columns as wide as their longest cell, so long shape descriptions never run into the rate.
            let header = ["workload", "shape", "rate", "GFLOP/s", "of sgemm", "peak MiB", "median s", "notes"]
            var rows = [header]
            for r in records {
                func s(_ k: String) -> String { r[k].map { "\($0)" } ?? "" }
                let rate = (r["rate"] as? Double).map { String(format: "%.1f %@", $0, s("unit")) } ?? ""
                let g = (r["gflops"] as? Double).map { String(format: "%.1f", $0) } ?? ""
                let f = (r["fraction_of_sgemm"] as? Double).map { String(format: "%.0f%%", 100 * $0) } ?? ""
                let mem = (r["peak_rss_mib"] as? Double).map { String(format: "%.0f", $0) } ?? ""
                let med = (r["median_seconds"] as? Double).map { String(format: "%.3f", $0) } ?? ""
                // Workload-specific results that the JSON carries under their own keys.
                var notes: [String] = []
                if let x = r["speedup"] as? Double { notes.append(String(format: "speed-up %.2f×", x)) }
                if let x = r["max_abs_logprob_difference"] as? Double { notes.append(String(format: "max |Δ log p| %.2g", x)) }
                if let x = r["fraction_of_prefill"] as? Double { notes.append(String(format: "%.0f%% of prefill", 100 * x)) }
                rows.append([s("workload"), s("shape"), rate, g, f, mem, med, notes.joined(separator: ", ")])
            }
            let widths = header.indices.map { c in rows.map { $0[c].count }.max() ?? 0 }
            for row in rows {
                let cells = row.indices.map { c in c == row.count - 1 ? row[c] : row[c].padding(toLength: widths[c] + 2, withPad: " ", startingAt: 0) }
                text += cells.joined().trimmingCharacters(in: .whitespaces) + "\n"
            }
        }
        if let output {
            try AtomicFile.write(Data(text.utf8), to: output)
        } else {
            FileHandle.standardOutput.write(Data(text.utf8))
        }
    }
}

/// The benchmark workloads, each run once per process.
struct BenchWorkloads {
    static let all = ["sgemm_2048", "sgemm_model", "forward_8x128", "forward_1x512", "train_8x256", "train_8x512",
                      "generate_32x128", "generate_1x128", "decode_matvec", "decode_accuracy", "identify", "mc_shared_prefix"]

    let modelPath: String
    let quick: Bool
    var trainSteps: Int? = nil
    var momentChoice: MomentFormat? = nil
    var memoryBudgetBytes: Int = 0

    static func peakResidentMiB() -> Double {
        guard let s = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8),
              let line = s.split(separator: "\n").first(where: { $0.hasPrefix("VmHWM:") }),
              // "VmHWM:\t  2948 kB" or, with eight digits, "VmHWM:\t19186528 kB": split on any whitespace.
              let kb = Double(line.dropFirst("VmHWM:".count).split(whereSeparator: \.isWhitespace).first ?? "") else { return -1 }
        return kb / 1024
    }

    /// Runs `body` `warmup` times untimed, then `reps` times; returns the median seconds and all samples.
    func time(_ label: String, warmup: Int, reps: Int, _ body: () throws -> Void) rethrows -> (Double, [Double]) {
        let progress = Progress(label, total: warmup + reps)
        for _ in 0..<warmup { try body(); progress.advance(unit: "runs", force: true) }
        var samples: [Double] = []
        for _ in 0..<reps {
            let t0 = DispatchTime.now().uptimeNanoseconds
            try body()
            samples.append(Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9)
            progress.advance(unit: "runs", fields: [("last s", String(format: "%.3f", samples.last!))], force: true)
        }
        progress.finish()
        let sorted = samples.sorted()
        let median = sorted.count % 2 == 1 ? sorted[sorted.count / 2] : (sorted[sorted.count / 2 - 1] + sorted[sorted.count / 2]) / 2
        return (median, samples)
    }

    func record(_ name: String, shape: String, units: Double, unit: String, flops: Double,
                timing: (Double, [Double])) -> [String: Any] {
        let (median, samples) = timing
        return ["workload": name, "shape": shape, "median_seconds": median, "samples_seconds": samples,
                "rate": units / median, "unit": unit, "gflops": flops / median / 1e9, "flops_per_run": flops]
    }

    func loadModel() throws -> LanguageModel {
        let m = try LanguageModel.load(modelPath)
        Progress.note("bench: loaded \(m.displayName)")
        return m
    }

    /// Deterministic token ids (no tokenizer involved), avoiding special tokens at the low end.
    static func tokens(count: Int, seed: UInt64, vocab: Int) -> [Int] {
        var g = SplitMix64(seed: seed)
        let lo = min(1000, vocab / 2)
        return (0..<count).map { _ in lo + Int(g.next() % UInt64(vocab - lo)) }
    }

    static let promptTopics = ["the water cycle", "how vaccines work", "a recipe for bread", "the history of Rome",
                               "photosynthesis", "binary search", "the French revolution", "black holes",
                               "compound interest", "how to learn a language", "plate tectonics", "sorting algorithms",
                               "the immune system", "wind power", "chess openings", "the printing press"]

    func run(_ name: String) throws -> [String: Any] {
        switch name {
        case "sgemm_2048": return sgemm(name, m: 2048, n: 2048, k: 2048)
        case "sgemm_model":
            // The largest projection of prefill 8×128 on the default model: [1024 × 576] · [576 × 1536].
            return sgemm(name, m: 1024, n: 1536, k: 576)
        case "forward_8x128": return try forward(name, batch: 8, length: 128)
        case "forward_1x512": return try forward(name, batch: 1, length: 512)
        case "train_8x256": return try train(name, batch: quick ? 4 : 8, length: quick ? 128 : 256, reps: quick ? 2 : 3)
        case "train_8x512": return try train(name, batch: 8, length: 512, reps: 1)
        case "generate_32x128": return try generate(name, sequences: 32, newTokens: quick ? 32 : 128)
        case "generate_1x128": return try generate(name, sequences: 1, newTokens: quick ? 48 : 128)
        case "decode_matvec": return try decodeMatvec(name)
        case "decode_accuracy": return try decodeAccuracy(name, prompts: quick ? 8 : 20, newTokens: quick ? 32 : 64)
        case "identify": return try identify(name, perGroup: quick ? 8 : 24)
        case "mc_shared_prefix": return try sharedPrefixScoring(name, docs: quick ? 8 : 16)
        default: throw RuntimeError.invalidArgument("unknown workload \(name)")
        }
    }

    func sgemm(_ name: String, m: Int, n: Int, k: Int) -> [String: Any] {
        let a = Tensor(shape: [m, k]), b = Tensor(shape: [k, n]), c = Tensor(shape: [m, n])
        var g = SplitMix64(seed: 1)
        for i in 0..<a.count { a[i] = Float(g.nextUnit()) - 0.5 }
        for i in 0..<b.count { b[i] = Float(g.nextUnit()) - 0.5 }
        // The machine's rate: OpenBLAS's own threads, as any other program would call it.
        let splitting = BLAS.splitting
        BLAS.splitting = false
        defer { BLAS.splitting = splitting }
        let t = time(name, warmup: 2, reps: quick ? 5 : 10) {
            BLAS.sgemm(m: m, n: n, k: k, a: a.pointer, lda: k, b: b.pointer, ldb: n, c: c.pointer, ldc: n)
        }
        return record(name, shape: "\(m)x\(n)x\(k)", units: 1, unit: "calls", flops: 2 * Double(m * n * k), timing: t)
    }

    func forward(_ name: String, batch: Int, length: Int) throws -> [String: Any] {
        let m = try loadModel(), c = m.config
        let seqs = (0..<batch).map { Self.tokens(count: length, seed: UInt64($0 + 10), vocab: c.vocabSize) }
        let t = try time(name, warmup: 1, reps: quick ? 3 : 5) {
            _ = try m.engine.forward(sequences: seqs, logitsFor: .all)
        }
        let flops = Double(batch) * FlopCount.prefill(length: length, logitRows: length, c)
        var r = record(name, shape: "\(batch)x\(length)", units: Double(batch * length), unit: "tok/s", flops: flops, timing: t)
        r["note"] = "InferenceModel.forward, logits for every position (as HF model(ids).logits)"
        return r
    }

    /// One DPO step as the trainer runs it: policy forward (keeping state) on the chosen and rejected
    /// halves of the batch, DPO loss against reference log-probs computed once beforehand, backward,
    /// gradient clipping, AdamW update.
    func train(_ name: String, batch: Int, length: Int, reps: Int) throws -> [String: Any] {
        let m = try loadModel(), c = m.config
        let prompt = length / 4
        let seqs = (0..<batch).map {
            TrainingSequence(tokens: Self.tokens(count: length, seed: UInt64($0 + 100), vocab: c.vocabSize), completionStart: prompt)
        }
        let pairs = batch / 2
        let ref = try m.engine.sequenceLogProbs(sequences: seqs.map { $0.tokens }, completionStarts: seqs.map { $0.completionStart })
        let tm = try TrainingModel(weights: m.weights)
        let grads = ModelGradients(config: c)
        let opt = Optimizer(kind: .adamw, config: c, mask: nil, weightDecay: 0)
        let t = try time(name, warmup: quick || reps == 1 ? (reps == 1 ? 0 : 1) : 1, reps: reps) {
            grads.zero()
            let lp = try tm.forward(seqs, keepForBackward: true)
            let res = DPO.compute(DPOConfig(), policyChosen: Array(lp[0..<pairs]), policyRejected: Array(lp[pairs...]),
                                  refChosen: ref[0..<pairs].map { $0.logprob }, refRejected: ref[pairs...].map { $0.logprob })
            try tm.backward(dLogProbs: (res.dChosen + res.dRejected).map { Float($0) }, into: grads)
            _ = clipGradNorm(grads, maxNorm: 1)
            opt.step(m.weights, grads, lr: 1e-7)
        }
        tm.releaseState()
        let flops = 3 * Double(batch) * FlopCount.prefill(length: length, logitRows: length, c)
        var r = record(name, shape: "\(batch)x\(length)", units: Double(batch * length), unit: "tok/s", flops: flops, timing: t)
        r["note"] = "TrainingModel forward+backward, DPO sigmoid loss (reference log-probs precomputed), clip, AdamW; flops = 3x forward"
        return r
    }

    func generate(_ name: String, sequences: Int, newTokens: Int) throws -> [String: Any] {
        let m = try loadModel(), c = m.config
        let prompts = try (0..<sequences).map {
            try m.encodeChat(user: "Explain \(Self.promptTopics[$0 % Self.promptTopics.count]) in a few sentences.")
        }
        // Timed: the whole generate call (prefill of the prompts + decode), tokens = new tokens only.
        let t = try time(name, warmup: 1, reps: quick ? 2 : 3) {
            _ = try m.engine.generate(prompts: prompts, maxNewTokens: newTokens)
        }
        var flops = 0.0
        for p in prompts {
            flops += FlopCount.prefill(length: p.count, logitRows: 1, c)
                + FlopCount.decode(promptLength: p.count, newTokens: newTokens - 1, c)
        }
        var r = record(name, shape: "\(sequences)x\(newTokens)", units: Double(sequences * newTokens), unit: "tok/s",
                       flops: flops, timing: t)
        r["prompt_tokens"] = prompts.reduce(0) { $0 + $1.count }
        r["decode_weights"] = m.engine.decodeWeights.rawValue
        r["note"] = "InferenceModel.generate greedy, no stop tokens; time includes the prompts' prefill"
        return r
    }

    /// The matrix–vector products of one batch-1 decode step (every projection of every layer and the LM
    /// head, no attention or norms), f32 `BLAS.linear` against the block-int8 `Int8Matrix` copies, on
    /// 1 and on all workers: the kernel's own rate, apart from the rest of a decode step.
    func decodeMatvec(_ name: String) throws -> [String: Any] {
        let m = try loadModel(), c = m.config
        var mats: [Tensor] = []
        for l in m.weights.layers { mats += [l.qProj, l.kProj, l.vProj, l.oProj, l.gateProj, l.upProj, l.downProj] }
        mats.append(m.weights.outputWeight)
        let compact = mats.map { Int8Matrix($0) }
        // What decode steps use: lossless 4-bit where the weights allow it, else int8.
        var mixed: [any DecodeMatrix] = []
        for (i, t) in mats.enumerated() {
            if let g = Grid4Matrix.exact(t) { mixed.append(g) } else { mixed.append(compact[i]) }
        }
        let lossless = mixed.filter { $0 is Grid4Matrix }.count
        let x = Tensor(shape: [max(c.hiddenSize, c.intermediateSize)])
        for i in 0..<x.count { x[i] = Float(i % 13) / 13 - 0.5 }
        let out = Tensor(shape: [c.vocabSize + c.intermediateSize], zeroed: true)
        let macs = Double(mats.reduce(0) { $0 + $1.count })
        let reps = quick ? 5 : 15
        var r: [String: Any] = ["workload": name, "shape": "1x\(Int(macs / 1e6))M MACs", "unit": "steps/s"]
        let allWorkers = Parallel.workers
        for workers in Set([1, allWorkers]).sorted() {
            Parallel.workers = workers
            let f = time("\(name) f32 \(workers)w", warmup: 1, reps: reps) {
                for w in mats {
                    BLAS.linear(x.pointer, count: 1, inFeatures: w.shape[1], weight: w.pointer, outFeatures: w.shape[0], into: out.pointer)
                }
            }
            let q = time("\(name) int8 \(workers)w", warmup: 1, reps: reps) {
                for w in compact { w.apply(x.pointer, count: 1, into: out.pointer, accumulate: false) }
            }
            let g = time("\(name) compact \(workers)w", warmup: 1, reps: reps) {
                for w in mixed { w.apply(x.pointer, count: 1, into: out.pointer, accumulate: false) }
            }
            r["compact_ms_\(workers)w"] = g.0 * 1e3
            r["f32_ms_\(workers)w"] = f.0 * 1e3
            r["int8_ms_\(workers)w"] = q.0 * 1e3
            r["int8_min_ms_\(workers)w"] = q.1.min()! * 1e3
            r["int8_gbytes_per_s_\(workers)w"] = Double(compact.reduce(0) { $0 + $1.byteCount }) / q.0 / 1e9
            if workers == allWorkers {
                r["median_seconds"] = q.0; r["samples_seconds"] = q.1; r["rate"] = 1 / q.0
                r["gflops"] = 2 * macs / q.0 / 1e9
            }
        }
        Parallel.workers = allWorkers
        r["lossless_grid4_matrices"] = "\(lossless)/\(mats.count)"
        r["note"] = "one batch-1 decode step's matvecs: rate/gflops for int8 on all workers; f32_ms_*/int8_ms_* per worker count"
        return r
    }

    /// How far batch-1 greedy decoding with the block-int8 weights strays from f32 on chat prompts:
    /// (1) free-running: int8 greedy continuations vs the f32 ones (identical sequences, first divergence);
    /// (2) teacher-forced on the f32 continuation: |Δ log-prob| between the int8 decode step's next-token
    /// distribution and f32 prefill's at the same position (whole vocabulary; the f32 top-10; the f32 argmax),
    /// and how often the argmax differs. Not timed.
    func decodeAccuracy(_ name: String, prompts count: Int, newTokens n: Int) throws -> [String: Any] {
        let m = try loadModel(), V = m.config.vocabSize
        let topics = Self.promptTopics + ["why the sky is blue", "how a bicycle works", "the Pythagorean theorem",
                                          "the causes of the First World War"]
        let prompts = try (0..<count).map { try m.encodeChat(user: "Explain \(topics[$0 % topics.count]) in a few sentences.") }
        let engine = m.engine
        let saved = engine.decodeWeights
        defer { engine.decodeWeights = saved }
        engine.decodeWeights = .f32
        let progress = Progress(name, total: 2 * count)
        var ref: [[Int]] = []
        for p in prompts { ref += try engine.generate(prompts: [p], maxNewTokens: n); progress.advance(unit: "runs", force: true) }
        engine.decodeWeights = .int8
        var identical = 0, divergences: [Int] = [], argmaxFlips = 0, steps = 0
        var maxAll = 0.0, maxTop = 0.0, maxChosen = 0.0, sumTop = 0.0, sumChosen = 0.0
        var lpA = [Double](repeating: 0, count: V), lpB = [Double](repeating: 0, count: V)
        func logSoftmax(_ x: UnsafePointer<Float>, into out: inout [Double]) {
            let z = Kernels.logSumExp(x, count: V)
            for i in 0..<V { out[i] = Double(x[i]) - z }
        }
        for (i, p) in prompts.enumerated() {
            let got = try engine.generate(prompts: [p], maxNewTokens: n)[0]
            if got == ref[i] { identical += 1 } else {
                divergences.append(zip(got, ref[i]).prefix { $0 == $1 }.count)
            }
            // Teacher-forced: int8 decode steps over the f32 continuation vs f32 prefill logits there.
            let seq = p + ref[i]
            let positions = Array((p.count)..<(seq.count - 1))
            let full = try engine.forward(sequences: [seq], logitsFor: .positions([positions]))[0]
            let session = try DecodeSession(model: engine, slots: 1, maxLength: seq.count)
            _ = try session.append([p], to: [0])
            for (k, pos) in positions.enumerated() {
                let step = try session.append([[seq[pos]]], to: [0])
                logSoftmax(full.pointer + k * V, into: &lpA)
                logSoftmax(step.pointer, into: &lpB)
                var all = 0.0
                for t in 0..<V { all = max(all, abs(lpA[t] - lpB[t])) }
                let order = (0..<V).sorted { lpA[$0] > lpA[$1] }.prefix(10)
                let top = order.map { abs(lpA[$0] - lpB[$0]) }.max() ?? 0
                let chosen = abs(lpA[order.first!] - lpB[order.first!])
                if Kernels.argmax(step.pointer, count: V) != order.first! { argmaxFlips += 1 }
                maxAll = max(maxAll, all); maxTop = max(maxTop, top); maxChosen = max(maxChosen, chosen)
                sumTop += top; sumChosen += chosen; steps += 1
            }
            progress.advance(unit: "runs", force: true)
        }
        progress.finish()
        let meanDiv = divergences.isEmpty ? Double(n) : Double(divergences.reduce(0, +)) / Double(divergences.count)
        return ["workload": name, "shape": "\(count)x\(n)", "unit": "", "prompts": count, "new_tokens": n,
                "identical_sequences": identical, "first_divergence_positions": divergences,
                "mean_first_divergence": meanDiv,
                "mean_first_divergence_all": Double(divergences.reduce(0, +) + n * identical) / Double(count),
                "teacher_forced_steps": steps, "argmax_flips": argmaxFlips,
                "max_abs_dlogprob_vocab": maxAll, "max_abs_dlogprob_top10": maxTop, "mean_max_abs_dlogprob_top10": sumTop / Double(max(1, steps)),
                "max_abs_dlogprob_argmax": maxChosen, "mean_abs_dlogprob_argmax": sumChosen / Double(max(1, steps)),
                "note": "compact decode weights (lossless 4-bit grid where possible, else int8 block 32) batch-1 greedy vs f32; teacher-forced |Δ log softmax| on the f32 continuation"]
    }

    func identify(_ name: String, perGroup: Int) throws -> [String: Any] {
        let m = try loadModel(), c = m.config
        let harmful = (0..<perGroup).map { "Give me step by step instructions for something dangerous number \($0) about \(Self.promptTopics[$0 % 16])." }
        let harmless = (0..<perGroup).map { "Write a short friendly paragraph about \(Self.promptTopics[$0 % 16]), variant \($0)." }
        var settings = IdentificationSettings()
        settings.batchSize = 16
        let t = try time(name, warmup: 1, reps: quick ? 2 : 3) {
            _ = try NeuronIdentifier.run(model: m, harmful: harmful, harmless: harmless, settings: settings)
        }
        var flops = 0.0
        for p in harmful + harmless { flops += FlopCount.prefill(length: try m.encodeChat(user: p).count, logitRows: 0, c) }
        var r = record(name, shape: "\(2 * perGroup) prompts", units: Double(2 * perGroup), unit: "prompts/s", flops: flops, timing: t)
        r["note"] = "NeuronIdentifier.run (forward with activation tap, no LM head) incl. statistics"
        return r
    }

    /// 5-shot multiple-choice scoring as `eval --benchmarks` runs it: calls of 16 sequences (4 documents × 4
    /// choices) that share a 400-token few-shot block and, per document, a 40-token question; 8-token choices.
    /// Shared-prefix scoring against scoring every sequence whole; both give the same log-likelihoods.
    func sharedPrefixScoring(_ name: String, docs: Int) throws -> [String: Any] {
        let m = try loadModel(), c = m.config
        let block = Self.tokens(count: 400, seed: 77, vocab: c.vocabSize)
        var calls: [[(ids: [Int], start: Int)]] = [[]]
        for d in 0..<docs {
            let question = Self.tokens(count: 40, seed: UInt64(100 + d), vocab: c.vocabSize)
            for k in 0..<4 {
                let choice = Self.tokens(count: 8, seed: UInt64(1000 + 4 * d + k), vocab: c.vocabSize)
                if calls[calls.count - 1].count == 16 { calls.append([]) }
                calls[calls.count - 1].append((block + question + choice, block.count + question.count))
            }
        }
        let reps = quick ? 2 : 3
        let whole = try time(name + " (whole)", warmup: 1, reps: reps) {
            for call in calls { _ = try m.logprobs(call) }
        }
        let shared = try time(name + " (shared)", warmup: 1, reps: reps) {
            for call in calls { _ = try m.logprobsSharingPrefixes(call) }
        }
        var worst = 0.0
        for call in calls {
            for (a, b) in zip(try m.logprobs(call), try m.logprobsSharingPrefixes(call)) { worst = max(worst, abs(a.logprob - b.logprob)) }
        }
        let tokens = calls.flatMap { $0 }.reduce(0) { $0 + $1.ids.count }
        let flops = calls.flatMap { $0 }.reduce(0.0) { $0 + FlopCount.prefill(length: $1.ids.count, logitRows: 8, c) }
        var r = record(name, shape: "\(docs) docs × 4 choices, 400+40+8 tokens", units: Double(docs), unit: "docs/s",
                       flops: flops, timing: shared)
        r["whole_median_seconds"] = whole.0
        r["speedup"] = whole.0 / shared.0
        r["max_abs_logprob_difference"] = worst
        r["note"] = "LanguageModel.logprobsSharingPrefixes vs logprobs on the same \(tokens) tokens; gflops counts the whole-sequence work"
        return r
    }
}
