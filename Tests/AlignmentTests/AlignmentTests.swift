import Foundation
import XCTest
import TrainingFixtureSupport
import Tensors
import Transformer
@testable import Alignment

final class AlignmentTests: XCTestCase {
    func examples(_ b: TrainingFixture.Batch) -> [PreferenceExample] {
        (0..<b.prompts.count).map { PreferenceExample(promptIds: b.prompts[$0], chosenIds: b.chosen[$0], rejectedIds: b.rejected[$0]) }
    }

    /// Gradients of the fixture's DPO loss through the engine (ablation on), masked like the optimizer does.
    func fixtureGradients(_ name: String, _ w: ModelWeights, mask: ParameterMask) throws -> ModelGradients {
        let b = try TrainingFixture.batch(name)
        let ns = try TrainingFixture.neuronSet(b, w.config)
        let model = try TrainingModel(weights: w)
        let n = b.prompts.count
        let seqs = (0..<n).map { TrainingSequence(tokens: b.chosen[$0], completionStart: b.prompts[$0].count) }
            + (0..<n).map { TrainingSequence(tokens: b.rejected[$0], completionStart: b.prompts[$0].count) }
        let lp = try model.forward(seqs, ablate: ns)
        let r = DPO.compute(DPOConfig(beta: b.beta, rpoAlpha: b.rpoAlpha), policyChosen: Array(lp[0..<n]), policyRejected: Array(lp[n...]),
                            refChosen: b.ref.map(\.0), refRejected: b.ref.map(\.1))
        XCTAssertEqual(r.loss, b.loss, accuracy: 1e-5)
        let g = ModelGradients(config: w.config)
        try model.backward(dLogProbs: (r.dChosen + r.dRejected).map { Float($0) }, into: g)
        mask.apply(to: g)
        return g
    }


    func testAdamWAndSGDOneStepMatchPyTorchAndKeepFrozenSlices() throws {
        let name = "llama_untied"
        let b = try TrainingFixture.batch(name)
        let adamInfo = b.raw["adamw"] as! [String: Double]
        for kind in [OptimizerKind.adamw, .sgd] {
            let w = try TrainingFixture.weights(name), orig = try TrainingFixture.weights(name)
            let ns = try TrainingFixture.neuronSet(b, w.config)
            let mask = ParameterMask(config: w.config, neurons: ns, mode: .freeze)
            // The engine's gradients match PyTorch to ~1e-5, but Adam's first step is sign-like (g/(|g|+eps))
            // and amplifies that noise on near-zero entries, so the optimizer is checked on PyTorch's own gradients.
            let mine = try fixtureGradients(name, w, mask: mask)
            let g = ModelGradients(config: w.config)
            let ref = try TrainingFixture.bundle(name, "grads")
            for (pname, t) in g.namedParameters {
                let r = ref[pname]!
                r.withUnsafeBufferPointer { t.pointer.update(from: $0.baseAddress!, count: t.count) }
            }
            XCTAssertEqual(mine.globalNorm(), g.globalNorm(), accuracy: 1e-4 * g.globalNorm())
            let opt: Optimizer
            let expected: [String: [Float]]
            if kind == .adamw {
                let norm = clipGradNorm(g, maxNorm: adamInfo["max_grad_norm"]!)
                XCTAssertEqual(norm, adamInfo["grad_norm"]!, accuracy: 1e-4 * adamInfo["grad_norm"]!)
                XCTAssertEqual(g.globalNorm(), adamInfo["max_grad_norm"]!, accuracy: 1e-4 * adamInfo["max_grad_norm"]!)
                opt = Optimizer(kind: .adamw, config: w.config, mask: mask, weightDecay: adamInfo["weight_decay"]!)
                opt.step(w, g, lr: adamInfo["lr"]!)
                expected = try TrainingFixture.bundle(name, "adamw")
            } else {
                opt = Optimizer(kind: .sgd, config: w.config, mask: mask)
                opt.step(w, g, lr: 0.1)
                expected = try TrainingFixture.bundle(name, "sgd")
            }
            XCTAssertFalse(expected.isEmpty)
            for (pname, t) in w.namedParameters {
                guard let e = expected[pname] else { continue }
                let o = orig.namedParameters.first { $0.0 == pname }!.1
                var maxDiff: Float = 0, maxStep: Float = 0
                for i in 0..<t.count { maxDiff = max(maxDiff, abs(t[i] - e[i])); maxStep = max(maxStep, abs(e[i] - o[i])) }
                XCTAssertGreaterThan(maxStep, 0, "\(kind) \(pname) did not move in the reference")
                XCTAssertLessThan(maxDiff, max(1e-7, 2e-4 * maxStep), "\(kind) \(pname) differs from PyTorch by \(maxDiff) (step \(maxStep))")
            }
            XCTAssertTrue(frozenBitsUnchanged(orig, w, ns), "\(kind) changed a frozen slice")
            if kind == .adamw {   // frozen slices also have untouched (zero) moments
                let l = ns.pairs[0].layer, j = ns.pairs[0].neuron, H = w.config.hiddenSize
                let index = w.namedParameters.firstIndex { $0.0 == "model.layers.\(l).mlp.gate_proj.weight" }!
                let m = opt.moment(0, parameter: index)!
                XCTAssertTrue((0..<H).allSatisfy { m[j * H + $0] == 0 })
                XCTAssertTrue((0..<H).contains { m[(j == 0 ? 2 : 0) * H + $0] != 0 })
            }
        }
    }

    func testMaskZeroesGradientSlicesAndInverseMode() throws {
        let c = try TrainingFixture.config("llama_untied")
        let ns = try NeuronSet(layerCount: 2, intermediateSize: c.intermediateSize, pairs: [(0, 5), (1, 9)])
        let g = ModelGradients(config: c)
        for (_, t) in g.namedParameters { for i in 0..<t.count { t[i] = 1 } }
        ParameterMask(config: c, neurons: ns, mode: .freeze).apply(to: g)
        let H = c.hiddenSize, I = c.intermediateSize
        XCTAssertTrue((0..<H).allSatisfy { g.storage.layers[0].gateProj[5 * H + $0] == 0 && g.storage.layers[0].upProj[5 * H + $0] == 0 })
        XCTAssertTrue((0..<H).allSatisfy { g.storage.layers[0].downProj[$0 * I + 5] == 0 })
        XCTAssertEqual(g.storage.layers[0].gateProj[4 * H], 1)
        XCTAssertEqual(g.storage.layers[0].downProj[6], 1)
        XCTAssertEqual(g.storage.layers[1].gateProj[5 * H], 1)
        let total = Double(g.namedParameters.reduce(0) { $0 + $1.1.count })
        XCTAssertEqual(g.globalNorm() * g.globalNorm(), total - Double(6 * H), accuracy: 1e-6)
        let inv = ModelGradients(config: c)
        for (_, t) in inv.namedParameters { for i in 0..<t.count { t[i] = 1 } }
        ParameterMask(config: c, neurons: ns, mode: .trainOnly).apply(to: inv)
        XCTAssertEqual(inv.globalNorm() * inv.globalNorm(), Double(6 * H), accuracy: 1e-6)
    }

    func trainer(_ w: ModelWeights, _ b: TrainingFixture.Batch, _ edit: (inout TrainerConfig) -> Void) throws -> DPOTrainer {
        var cfg = TrainerConfig()
        cfg.learningRate = 1e-3; cfg.weightDecay = 0.1; cfg.batchSize = 2; cfg.schedule = .cosine; cfg.warmupSteps = 1
        cfg.epochs = 3; cfg.ablation = .always
        edit(&cfg)
        return try DPOTrainer(weights: w, examples: examples(b), neurons: try TrainingFixture.neuronSet(b, w.config), config: cfg)
    }

    func testTrainingKeepsFrozenSlicesBitIdentical() throws {
        let b = try TrainingFixture.batch("llama_tied")
        for kind in [OptimizerKind.adamw, .sgd] {
            let w = try TrainingFixture.weights("llama_tied"), orig = try TrainingFixture.weights("llama_tied")
            let t = try trainer(w, b) { $0.optimizer = kind; $0.warmupSteps = 0; $0.ablation = .dropout(0.5) }
            var steps = 0
            try t.train { m in steps += 1; XCTAssertFalse(m.skipped) }
            XCTAssertEqual(steps, 6)
            XCTAssertTrue(frozenBitsUnchanged(orig, w, try TrainingFixture.neuronSet(b, w.config)), "\(kind)")
            XCTAssertNotEqual(w.layers[0].gateProj.array, orig.layers[0].gateProj.array)
            XCTAssertNotEqual(w.embedTokens.array, orig.embedTokens.array)
        }
    }

    func testSNTuneTrainsOnlyTheNeuronSlices() throws {
        let b = try TrainingFixture.batch("llama_untied")
        let w = try TrainingFixture.weights("llama_untied"), orig = try TrainingFixture.weights("llama_untied")
        let ns = try TrainingFixture.neuronSet(b, w.config)
        let t = try trainer(w, b) { $0.maskMode = .trainOnly; $0.ablation = .none; $0.warmupSteps = 0 }
        try t.train()
        let H = w.config.hiddenSize, I = w.config.intermediateSize
        var moved = 0
        for ((name, a), (_, o)) in zip(w.namedParameters, orig.namedParameters) {
            let cols = a.shape.last!
            let layer = name.hasPrefix("model.layers.") ? Int(name.split(separator: ".")[2]) : nil
            for i in 0..<a.count {
                var inSlice = false
                if let l = layer {
                    if name.hasSuffix("gate_proj.weight") || name.hasSuffix("up_proj.weight") { inSlice = ns.contains(layer: l, neuron: i / cols) }
                    if name.hasSuffix("down_proj.weight") { inSlice = ns.contains(layer: l, neuron: i % cols) }
                }
                if !inSlice && a[i].bitPattern != o[i].bitPattern { moved += 1 }
            }
        }
        XCTAssertEqual(moved, 0, "elements outside the neuron slices moved")
        let (l, j) = ns.pairs[0]
        XCTAssertTrue((0..<H).contains { w.layers[l].gateProj[j * H + $0] != orig.layers[l].gateProj[j * H + $0] })
        XCTAssertTrue((0..<H).contains { w.layers[l].downProj[$0 * I + j] != orig.layers[l].downProj[$0 * I + j] })
    }

    func testFirstStepLossIsLn2() throws {
        let b = try TrainingFixture.batch("qwen2_bias")
        for mode in [AblationMode.none, .always, .dropout(0.5)] {
            let w = try TrainingFixture.weights("qwen2_bias")
            let t = try trainer(w, b) { $0.ablation = mode; $0.batchSize = 3 }
            let m = try t.trainStep()
            XCTAssertEqual(m.values["loss"]!, log(2), accuracy: 1e-6)
            XCTAssertEqual(m.values["rewards/margins"]!, 0, accuracy: 1e-6)
            XCTAssertEqual(m.values["learning_rate"]!, 0)   // warmup step 0 of HF's schedule
            for k in ["rewards/chosen", "rewards/rejected", "rewards/accuracies", "logps/chosen", "logps/rejected", "nll_loss", "grad_norm", "epoch"] {
                XCTAssertNotNil(m.values[k], k)
            }
            XCTAssertGreaterThan(m.values["grad_norm"]!, 0)
        }
    }

    func testAblatedStepsUseTheirOwnRPOWeight() throws {
        let b = try TrainingFixture.batch("qwen2_bias")
        for (mode, ablated) in [(AblationMode.always, true), (.none, false)] {
            let t = try trainer(try TrainingFixture.weights("qwen2_bias"), b) {
                $0.ablation = mode; $0.batchSize = 3; $0.dpo.rpoAlpha = 1; $0.ablatedRPOAlpha = 0
            }
            let m = try t.trainStep()
            XCTAssertEqual(m.ablated, ablated)
            // The first step's DPO term is ln 2; only the intact step adds the chosen NLL.
            XCTAssertEqual(m.values["loss"]!, log(2) + (ablated ? 0 : m.values["nll_loss"]!), accuracy: 1e-6)
            XCTAssertGreaterThan(m.values["nll_loss"]!, 0)
        }
    }

    func testResumeGivesTheSameWeights() throws {
        let b = try TrainingFixture.batch("llama_tied")
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("sn-resume-\(getpid())")
        defer { try? FileManager.default.removeItem(at: dir) }
        let edit: (inout TrainerConfig) -> Void = { $0.ablation = .dropout(0.5); $0.gradientAccumulationSteps = 2; $0.batchSize = 1; $0.epochs = 4 }
        let wa = try TrainingFixture.weights("llama_tied")
        let ta = try trainer(wa, b, edit)
        var la: [String] = []
        try ta.train { la.append($0.jsonLine) }
        XCTAssertEqual(la.count, 8)

        let wb = try TrainingFixture.weights("llama_tied")
        let tb = try trainer(wb, b, edit)
        var lb: [String] = []
        try tb.train(untilStep: 3) { lb.append($0.jsonLine) }
        try tb.save(dir)
        try tb.train(untilStep: 5)      // progress after the save is lost, as with kill -9
        let wc = try TrainingFixture.weights("llama_tied")
        for (_, t) in wc.namedParameters { t.zero() }   // everything must come from the checkpoint
        let tc = try trainer(wc, b, edit)
        try tc.resume(dir)
        XCTAssertEqual(tc.step, 3)
        try tc.train { lb.append($0.jsonLine) }
        XCTAssertEqual(la, lb)
        for ((n, x), (_, y)) in zip(wa.namedParameters, wc.namedParameters) {
            XCTAssertLessThanOrEqual(TrainingFixture.relError(y.array, x.array), 1e-6, n)
        }
        // A corrupted manifest is reported, not trusted.
        try Data("{".utf8).write(to: dir.appendingPathComponent("manifest.json"))
        XCTAssertThrowsError(try tc.resume(dir))
    }

    func testNonFiniteStepIsSkipped() throws {
        let b = try TrainingFixture.batch("llama_untied")
        let w = try TrainingFixture.weights("llama_untied")
        w.layers[1].oProj[3] = .nan
        let before = w.layers[0].qProj.array
        let t = try trainer(w, b) { $0.warmupSteps = 0 }
        let m = try t.trainStep()
        XCTAssertTrue(m.skipped)
        XCTAssertEqual(w.layers[0].qProj.array, before)
        XCTAssertEqual(t.optimizer.stepCount, 0)
        XCTAssertTrue(m.jsonLine.contains("\"skipped\":true"))
    }

    func testSchedulesMatchTransformers() throws {
        let j = try JSONSerialization.jsonObject(with: Data(contentsOf: TrainingFixture.root.appendingPathComponent("schedules.json"))) as! [String: [String: Any]]
        for (k, kind) in [("cosine", LRScheduleKind.cosine), ("linear", .linear), ("constant", .constant)] {
            let e = j[k]!, lrs = e["lr"] as! [Double]
            for (s, v) in lrs.enumerated() {
                XCTAssertEqual(lrMultiplier(kind, step: s, warmup: e["warmup"] as! Int, total: e["total"] as! Int), v, accuracy: 1e-12, "\(k) step \(s)")
            }
        }
    }

    func testClippingMatchesTorchRule() throws {
        let c = try TrainingFixture.config("llama_untied")
        let g = ModelGradients(config: c)
        g.storage.norm[0] = 3; g.storage.layers[1].downProj[7] = 4
        XCTAssertEqual(clipGradNorm(g, maxNorm: 10), 5, accuracy: 1e-12)
        XCTAssertEqual(g.storage.norm[0], 3)             // coef ≥ 1: untouched
        XCTAssertEqual(clipGradNorm(g, maxNorm: 1), 5, accuracy: 1e-12)
        XCTAssertEqual(Double(g.storage.norm[0]), 3 / (5 + 1e-6), accuracy: 1e-7)
        XCTAssertEqual(Double(g.storage.layers[1].downProj[7]), 4 / (5 + 1e-6), accuracy: 1e-7)
    }

    func testDPOLossFormulas() {
        let pc = [SequenceLogProb(sum: -4, count: 2)], pr = [SequenceLogProb(sum: -6, count: 3)]
        let s = DPO.compute(DPOConfig(beta: 0.5), policyChosen: pc, policyRejected: pr, refChosen: [-5], refRejected: [-5])
        // z = (−4 + 6) − 0 = 2; loss = −logσ(1)
        XCTAssertEqual(s.loss, log(1 + exp(-1.0)), accuracy: 1e-12)
        XCTAssertEqual(s.dChosen[0], -0.5 / (1 + exp(1.0)), accuracy: 1e-12)
        XCTAssertEqual(s.metrics["rewards/chosen"]!, 0.5, accuracy: 1e-12)
        XCTAssertEqual(s.metrics["rewards/rejected"]!, -0.5, accuracy: 1e-12)
        XCTAssertEqual(s.metrics["rewards/accuracies"]!, 1)
        XCTAssertEqual(s.metrics["nll_loss"]!, 2, accuracy: 1e-12)
        let i = DPO.compute(DPOConfig(beta: 0.5, lossType: .ipo), policyChosen: pc, policyRejected: pr, refChosen: [-5], refRejected: [-5])
        // per-token averages: z = (−2 + 2) − (−2.5 + 5/3); loss = (z − 1/(2β))² = (z − 1)²
        let z = 0.0 - (-2.5 + 5.0 / 3.0)
        XCTAssertEqual(i.loss, (z - 1) * (z - 1), accuracy: 1e-12)
        XCTAssertEqual(i.dChosen[0], 2 * (z - 1) / 2, accuracy: 1e-12)
        let r = DPO.compute(DPOConfig(beta: 0.5, rpoAlpha: 0.25), policyChosen: pc, policyRejected: pr, refChosen: [-5], refRejected: [-5])
        XCTAssertEqual(r.loss, s.loss + 0.25 * 2, accuracy: 1e-12)
        XCTAssertEqual(r.dChosen[0], s.dChosen[0] - 0.25 / 2, accuracy: 1e-12)
        XCTAssertEqual(AblationMode(parsing: "dropout:0.3"), .dropout(0.3))
        XCTAssertNil(AblationMode(parsing: "dropout:2"))
    }

    func testExamplesAreValidatedAndTruncated() throws {
        let w = try TrainingFixture.weights("llama_untied")
        var cfg = TrainerConfig()
        XCTAssertThrowsError(try DPOTrainer(weights: w, examples: [PreferenceExample(promptIds: [1, 2], chosenIds: [1, 3, 4], rejectedIds: [1, 2, 5])],
                                            neurons: nil, config: cfg))
        cfg.maxLength = 4
        let t = try DPOTrainer(weights: w, examples: [
            PreferenceExample(promptIds: [1, 2], chosenIds: [1, 2, 3, 4, 5, 6], rejectedIds: [1, 2, 7]),
            PreferenceExample(promptIds: [1, 2, 3, 4, 5], chosenIds: [1, 2, 3, 4, 5, 6, 7], rejectedIds: [1, 2, 3, 4, 5, 8]),
        ], neurons: nil, config: cfg)
        XCTAssertEqual(t.pairs[0].chosen, TrainingSequence(tokens: [1, 2, 3, 4], completionStart: 2))
        XCTAssertEqual(t.pairs[0].rejected, TrainingSequence(tokens: [1, 2, 7], completionStart: 2))
        XCTAssertEqual(t.pairs[1].chosen, TrainingSequence(tokens: [3, 4, 5, 6], completionStart: 3))
        XCTAssertEqual(t.pairs[1].rejected, TrainingSequence(tokens: [3, 4, 5, 8], completionStart: 3))
    }

    func testIntactReferenceAndCachedReferenceLogProbs() throws {
        let b = try TrainingFixture.batch("qwen2_bias")
        // An intact reference keeps one state; with the ablated policy the first loss is no longer ln 2.
        let w = try TrainingFixture.weights("qwen2_bias")
        let t = try trainer(w, b) { $0.ablation = .always; $0.referenceAblated = false; $0.batchSize = 3 }
        try t.computeReferenceLogProbs()
        XCTAssertEqual(t.referenceLogProbs.chosen.count, 1)
        let m = try t.trainStep()
        XCTAssertGreaterThan(abs(m.values["loss"]! - log(2)), 1e-4)
        XCTAssertNotEqual(m.values["rewards/margins"]!, 0)

        // Cached reference values give exactly the same step as computed ones; wrong shapes are refused.
        let wa = try TrainingFixture.weights("qwen2_bias"), wb = try TrainingFixture.weights("qwen2_bias")
        let ta = try trainer(wa, b) { $0.ablation = .dropout(0.5); $0.batchSize = 3 }
        try ta.computeReferenceLogProbs()
        XCTAssertEqual(ta.referenceLogProbs.chosen.count, 2)
        let tb = try trainer(wb, b) { $0.ablation = .dropout(0.5); $0.batchSize = 3 }
        XCTAssertThrowsError(try tb.setReferenceLogProbs(chosen: [ta.referenceLogProbs.chosen[0]], rejected: [ta.referenceLogProbs.rejected[0]]))
        try tb.setReferenceLogProbs(chosen: ta.referenceLogProbs.chosen, rejected: ta.referenceLogProbs.rejected)
        XCTAssertEqual(try ta.trainStep().jsonLine, try tb.trainStep().jsonLine)
        XCTAssertEqual(wa.layers[0].qProj.array, wb.layers[0].qProj.array)
        XCTAssertEqual(AblationMode(parsing: "never"), AblationMode.none)
        XCTAssertEqual(AblationMode(parsing: "dropout:0.25"), .dropout(0.25))
        XCTAssertNil(AblationMode(parsing: "dropout:2"))
    }

    func testConsecutiveNonFiniteStepsAreCounted() throws {
        let b = try TrainingFixture.batch("llama_untied")
        let w = try TrainingFixture.weights("llama_untied")
        w.layers[1].oProj[3] = .nan
        let t = try trainer(w, b) { $0.warmupSteps = 0 }
        for k in 1...3 { XCTAssertTrue(try t.trainStep().skipped); XCTAssertEqual(t.consecutiveSkips, k) }
        XCTAssertGreaterThan(t.lastStepTokens, 0)
    }
}

/// Whether every slice `neurons` freezes (gate/up row j, down column j) has the same bits in both.
func frozenBitsUnchanged(_ before: ModelWeights, _ after: ModelWeights, _ neurons: NeuronSet) -> Bool {
    let H = before.config.hiddenSize, I = before.config.intermediateSize
    for (l, j) in neurons.pairs {
        let a = before.layers[l], b = after.layers[l]
        for c in 0..<H {
            if a.gateProj[j * H + c].bitPattern != b.gateProj[j * H + c].bitPattern { return false }
            if a.upProj[j * H + c].bitPattern != b.upProj[j * H + c].bitPattern { return false }
            if a.downProj[c * I + j].bitPattern != b.downProj[c * I + j].bitPattern { return false }
        }
    }
    return true
}
