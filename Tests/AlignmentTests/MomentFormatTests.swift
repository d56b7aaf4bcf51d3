import Foundation
import Tensors
import TrainingFixtureSupport
@testable import Alignment
import Transformer
import XCTest

/// bf16 AdamW moments (stochastic rounding) against the f32 optimizer, and the memory plan.
final class MomentFormatTests: XCTestCase {
    func examples(_ b: TrainingFixture.Batch) -> [PreferenceExample] {
        (0..<b.prompts.count).map { PreferenceExample(promptIds: b.prompts[$0], chosenIds: b.chosen[$0], rejectedIds: b.rejected[$0]) }
    }

    func trainer(_ w: ModelWeights, _ b: TrainingFixture.Batch, moments: MomentFormat, steps: Int = 20,
                 _ edit: (inout TrainerConfig) -> Void = { _ in }) throws -> DPOTrainer {
        var cfg = TrainerConfig()
        cfg.learningRate = 1e-3; cfg.weightDecay = 0.1; cfg.batchSize = 2; cfg.schedule = .cosine; cfg.warmupSteps = 2
        cfg.maxSteps = steps; cfg.ablation = .dropout(0.5); cfg.seed = 7
        cfg.moments = moments == .f32 ? nil : moments
        edit(&cfg)
        return try DPOTrainer(weights: w, examples: examples(b), neurons: try TrainingFixture.neuronSet(b, w.config), config: cfg)
    }

    /// The expectation of stochastic rounding is the value itself: averaged over all 2¹⁶ equally likely draws
    /// the stored value equals x exactly (in double), for values of both signs, tiny and large.
    func testStochasticRoundingIsUnbiasedOverAllDraws() {
        for x: Float in [1.0009765625 + 0x1p-20, -3.14159, 1e-30, -7.5e20, 0x1p-130, 0.1, 65504.7] {
            var sum = 0.0
            var lo = UInt16.max, hi = UInt16.min
            for r in 0..<(1 << 16) {
                let h = BFloat16.stochasticRound(x, random: UInt32(r))
                sum += Double(BFloat16.float(h)); lo = min(lo, h); hi = max(hi, h)
            }
            XCTAssertEqual(sum / 65536, Double(x), accuracy: abs(Double(x)) * 1e-12, "\(x)")
            XCTAssertLessThanOrEqual(Int(hi) - Int(lo), 1, "\(x): only the two neighbours")
        }
        // Exact bf16 values never move; NaN stays NaN; Inf stays Inf.
        XCTAssertEqual(BFloat16.float(BFloat16.stochasticRound(1.5, random: 0xFFFF)), 1.5)
        XCTAssertTrue(BFloat16.float(BFloat16.stochasticRound(.nan, random: 0x1234)).isNaN)
        XCTAssertEqual(BFloat16.float(BFloat16.stochasticRound(-.infinity, random: 0xFFFF)), -.infinity)
        XCTAssertEqual(BFloat16.float(BFloat16.stochasticRound(Float.greatestFiniteMagnitude, random: 0xFFFF)).isFinite, true)
        // Round-to-nearest-even as torch: 1 + 2⁻⁸ is a tie between 1 and 1 + 2⁻⁷ and goes to the even 1.
        XCTAssertEqual(BFloat16.float(BFloat16.roundNearestEven(1 + 0x1p-8)), 1)
        XCTAssertEqual(BFloat16.float(BFloat16.roundNearestEven(1 + 3 * 0x1p-8)), 1 + 0x1p-6)
    }

    /// The vector path and the scalar path draw the same bits and store the same moments; the result does not
    /// depend on the number of workers.
    func testBF16StepIsIndependentOfThreadsAndVectorWidth() throws {
        let b = try TrainingFixture.batch("llama_tied")
        var results: [[UInt32]] = []
        let saved = Parallel.workers
        defer { Parallel.workers = saved }
        for workers in [1, 2] {
            Parallel.workers = workers
            let w = try TrainingFixture.weights("llama_tied")
            let t = try trainer(w, b, moments: .bf16, steps: 3)
            try t.train()
            results.append(w.namedParameters.flatMap { $0.1.array.map(\.bitPattern) })
        }
        XCTAssertEqual(results[0], results[1])
        // A span whose length is not a multiple of 16 and starts off a 16-boundary: lane j of the vector path
        // must store what the scalar rule stores for element j.
        let n = 53, start = 5
        let P = UnsafeMutablePointer<Float>.allocate(capacity: 64), G = UnsafeMutablePointer<Float>.allocate(capacity: 64)
        let M = UnsafeMutablePointer<UInt16>.allocate(capacity: 64), V = UnsafeMutablePointer<UInt16>.allocate(capacity: 64)
        defer { P.deallocate(); G.deallocate(); M.deallocate(); V.deallocate() }
        for i in 0..<64 { P[i] = Float(i) * 0.01 - 0.3; G[i] = sin(Float(i)) * 0.1; M[i] = 0x3C00 &+ UInt16(i); V[i] = 0x3800 &+ UInt16(i) }
        let k = Optimizer.AdamWConstants(decay: 0.999, applyDecay: true, w1: 0.1, b2: 0.999, w2: 0.001, stepSize: 0.01, bc2s: 0.3, eps: 1e-8)
        let (P0, M0, V0) = (Array(UnsafeBufferPointer(start: P, count: 64)), Array(UnsafeBufferPointer(start: M, count: 64)), Array(UnsafeBufferPointer(start: V, count: 64)))
        Optimizer.adamwBF16(P, G, M, V, start: start, count: n, k, keyM: 11, keyV: 12)
        for j in 0..<64 {
            guard j >= start && j < start + n else {
                XCTAssertEqual(P[j].bitPattern, P0[j].bitPattern); XCTAssertEqual(M[j], M0[j]); XCTAssertEqual(V[j], V0[j]); continue
            }
            var x = P0[j] * k.decay
            let m0 = BFloat16.float(M0[j])
            let m = BFloat16.stochasticRound(m0 + k.w1 * (G[j] - m0), random: RoundingNoise.bits(index: j, key: 11))
            let v = BFloat16.stochasticRound(BFloat16.float(V0[j]) * k.b2 + k.w2 * G[j] * G[j], random: RoundingNoise.bits(index: j, key: 12))
            x = x - k.stepSize * (BFloat16.float(m) / (BFloat16.float(v).squareRoot() / k.bc2s + k.eps))
            XCTAssertEqual(M[j], m, "m[\(j)]"); XCTAssertEqual(V[j], v, "v[\(j)]"); XCTAssertEqual(P[j].bitPattern, x.bitPattern, "p[\(j)]")
        }
    }

    /// 20 steps with bf16 moments against the same 20 steps with f32 moments: every frozen slice stays
    /// bit-identical and the losses agree to what the moment format explains. Each stored moment is within one
    /// bf16 ulp (≤ 2⁻⁷ relative) of the f32 value, so each update element differs by ≤ ~1.2 % of itself with zero
    /// mean; over 20 steps at lr 1e-3 that moves the loss by a few 1e-4 (measured here: worst |Δ| printed).
    func testBF16MomentsTrackF32OverTwentySteps() throws {
        let b = try TrainingFixture.batch("llama_tied")
        var losses: [MomentFormat: [Double]] = [:]
        var finals: [MomentFormat: ModelWeights] = [:]
        for f in [MomentFormat.f32, .bf16] {
            let w = try TrainingFixture.weights("llama_tied"), orig = try TrainingFixture.weights("llama_tied")
            let t = try trainer(w, b, moments: f)
            var l: [Double] = []
            try t.train { l.append($0.values["loss"]!) }
            XCTAssertEqual(l.count, 20)
            XCTAssertTrue(frozenBitsUnchanged(orig, w, try TrainingFixture.neuronSet(b, w.config)), "\(f) changed a frozen slice")
            losses[f] = l; finals[f] = w
        }
        let a = losses[.f32]!, c = losses[.bf16]!
        let worst = zip(a, c).map { abs($0 - $1) }.max()!
        print("bf16 vs f32 moments, 20 steps: worst |Δloss| \(worst), first loss \(a[0]) → last \(a[19]) (f32) / \(c[19]) (bf16)")
        XCTAssertEqual(a[0], c[0], "the first loss precedes any update")
        XCTAssertGreaterThan(abs(a[0] - a[19]), 20 * worst, "the loss moved far more than the formats differ")
        XCTAssertLessThan(worst, 2e-3)
        // The weights moved by nearly the same amount: relative difference of the total change.
        var num = 0.0, den = 0.0
        let orig = try TrainingFixture.weights("llama_tied")
        for (((_, x), (_, y)), (_, o)) in zip(zip(finals[.f32]!.namedParameters, finals[.bf16]!.namedParameters), orig.namedParameters) {
            for i in 0..<x.count { let d = Double(x[i] - y[i]); num += d * d; let s = Double(x[i] - o[i]); den += s * s }
        }
        print("relative difference of the 20-step weight change: \((num / den).squareRoot())")
        XCTAssertLessThan((num / den).squareRoot(), 0.05)
    }

    /// A killed bf16 run resumes to the same weights: the moments checkpoint as bf16 and the rounding draws are
    /// keyed by the step, not by a stream position.
    func testBF16ResumeGivesTheSameWeights() throws {
        let b = try TrainingFixture.batch("llama_tied")
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("sn-bf16-resume-\(getpid())")
        defer { try? FileManager.default.removeItem(at: dir) }
        let wa = try TrainingFixture.weights("llama_tied")
        try trainer(wa, b, moments: .bf16, steps: 8).train()
        let wb = try TrainingFixture.weights("llama_tied")
        let tb = try trainer(wb, b, moments: .bf16, steps: 8)
        try tb.train(untilStep: 3)
        try tb.save(dir)
        let manifest = try String(contentsOf: dir.appendingPathComponent("manifest.json"), encoding: .utf8)
        XCTAssertTrue(manifest.contains("\"dtype\":\"bf16\""))
        let wc = try TrainingFixture.weights("llama_tied")
        for (_, t) in wc.namedParameters { t.zero() }
        let tc = try trainer(wc, b, moments: .bf16, steps: 8)
        try tc.resume(dir)
        try tc.train()
        for ((n, x), (_, y)) in zip(wa.namedParameters, wc.namedParameters) {
            XCTAssertEqual(x.array.map(\.bitPattern), y.array.map(\.bitPattern), n)
        }
        // Resuming a bf16 checkpoint with f32 moments is refused with the reason.
        let wd = try TrainingFixture.weights("llama_tied")
        let td = try trainer(wd, b, moments: .f32, steps: 8)
        XCTAssertThrowsError(try td.resume(dir)) { e in XCTAssertTrue("\(e)".contains("bf16"), "\(e)") }
    }

    func testMemoryPlanPrefersF32ThenBF16AndRefusesWhenNothingFits() throws {
        let c = try ReferenceShapes.config("qwen2.5-1.5b")
        let params = ModelWeights.parameterCount(c)
        XCTAssertEqual(params, 1_543_714_304)   // Qwen2.5-1.5B's published count (tied embeddings)
        let big = try TrainingMemoryPlan.choose(budgetBytes: 40 << 30, config: c, optimizer: .adamw, moments: nil, tokens: 1024, completionRows: 768)
        XCTAssertEqual(big.moments, .f32)
        XCTAssertFalse(big.recomputeLayers)
        let fit = try TrainingMemoryPlan.choose(budgetBytes: 20 << 30, config: c, optimizer: .adamw, moments: nil, tokens: 1024, completionRows: 768)
        XCTAssertEqual(fit.moments, .bf16)
        XCTAssertLessThanOrEqual(fit.totalBytes, 20 << 30)
        XCTAssertEqual(fit.items.first { $0.name.hasPrefix("AdamW") }!.bytes, 4 * params)
        XCTAssertThrowsError(try TrainingMemoryPlan.choose(budgetBytes: 8 << 30, config: c, optimizer: .adamw, moments: nil, tokens: 1024, completionRows: 768)) { e in
            XCTAssertTrue("\(e)".contains("does not fit the memory budget of 8.00 GiB"), "\(e)")
        }
        // SGD keeps no moments.
        let sgd = TrainingMemoryPlan.estimate(config: c, optimizer: .sgd, moments: .f32, recomputeLayers: true, tokens: 1024, completionRows: 768)
        XCTAssertNil(sgd.items.first { $0.name.hasPrefix("AdamW") })
        // Shapes listed without allocation agree with the allocated weights on a small model.
        let small = try ReferenceShapes.config("smollm2-135m")
        let w = ModelWeights(config: small)
        XCTAssertEqual(ModelWeights.parameterShapes(small).map(\.name), w.namedParameters.map(\.0))
        XCTAssertEqual(ModelWeights.parameterShapes(small).map(\.shape), w.namedParameters.map(\.1.shape))
        XCTAssertEqual(w.parameterCount, 134_515_008)   // SmolLM2-135M
    }
}
