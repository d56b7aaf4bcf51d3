import Foundation
import XCTest
import TrainingFixtureSupport
import Tensors
@testable import Transformer

final class TrainingGradientTests: XCTestCase {
    /// DPO sigmoid loss (+ optional RPO) gradients by hand from the per-sequence log-probs, exactly as
    /// the fixture script composes them; the engine must reproduce PyTorch autograd per tensor.
    func checkGradients(_ name: String, recompute: Bool, keepLogits: Bool = true, attentionBlock: Int? = nil,
                        file: StaticString = #filePath, line: UInt = #line) throws {
        let w = try TrainingFixture.weights(name)
        let b = try TrainingFixture.batch(name)
        let ns = try TrainingFixture.neuronSet(b, w.config)
        let model = try TrainingModel(weights: w, recomputeLayers: recompute)
        model.lmHeadChunkElements = 3 * w.config.vocabSize   // force several LM-head chunks
        if !keepLogits { model.logitsBudgetBytes = 0 }        // backward recomputes the LM-head logits
        if let attentionBlock { model.attentionBlock = attentionBlock }
        let n = b.prompts.count
        var seqs: [TrainingSequence] = []
        for i in 0..<n { seqs.append(.init(tokens: b.chosen[i], completionStart: b.prompts[i].count)) }
        for i in 0..<n { seqs.append(.init(tokens: b.rejected[i], completionStart: b.prompts[i].count)) }
        let lp = try model.forward(seqs, ablate: ns)
        for i in 0..<n {
            XCTAssertEqual(lp[i].sum, b.policyChosen[i], accuracy: 1e-4 * max(1, abs(b.policyChosen[i])), file: file, line: line)
            XCTAssertEqual(lp[n + i].sum, b.policyRejected[i], accuracy: 1e-4 * max(1, abs(b.policyRejected[i])), file: file, line: line)
        }
        var d = [Float](repeating: 0, count: 2 * n)
        var nllCount = 0
        for i in 0..<n { nllCount += lp[i].count }
        for i in 0..<n {
            let z = (lp[i].sum - lp[n + i].sum) - (b.ref[i].0 - b.ref[i].1)
            let dz = -b.beta * (1 - 1 / (1 + exp(-b.beta * z))) / Double(n)
            d[i] = Float(dz); d[n + i] = Float(-dz)
            if let a = b.rpoAlpha { d[i] += Float(-a / Double(nllCount)) }
        }
        let grads = ModelGradients(config: w.config)
        try model.backward(dLogProbs: d, into: grads)
        // Frozen slices: the fixture zeroes their gradients like the optimizer mask does; ablation alone must
        // already make them zero, so compare WITHOUT masking here.
        let ref = try TrainingFixture.bundle(name, "grads")
        var names = Set(ref.keys)
        var worst: (Double, String) = (0, "")
        defer { print("\(name) (recompute \(recompute)): worst gradient relative error \(worst.0) (\(worst.1))") }
        for (pname, t) in grads.namedParameters {
            guard var r = ref[pname] else { XCTFail("no reference gradient for \(pname)", file: file, line: line); continue }
            names.remove(pname)
            if pname == "model.embed_tokens.weight", w.config.tieWordEmbeddings, let head = ref["lm_head.weight"] {
                _ = head   // PyTorch reports the tied tensor once, under the embedding name
            }
            r = Array(r.prefix(t.count))
            let e = TrainingFixture.relError(t.array, r)
            if e > worst.0 { worst = (e, pname) }
            XCTAssertLessThan(e, 1e-4, "\(name) \(pname) rel error \(e)", file: file, line: line)
        }
        names.remove("lm_head.weight")
        XCTAssertTrue(names.isEmpty, "unchecked reference gradients \(names)", file: file, line: line)
        // Ablated neurons get exactly zero gradient on their gate/up rows and down column.
        for (l, j) in b.neurons {
            let lg = grads.storage.layers[l], H = w.config.hiddenSize, I = w.config.intermediateSize
            for c in 0..<H {
                XCTAssertEqual(lg.gateProj[j * H + c], 0, file: file, line: line)
                XCTAssertEqual(lg.upProj[j * H + c], 0, file: file, line: line)
                XCTAssertEqual(lg.downProj[c * I + j], 0, file: file, line: line)
            }
        }
    }

    func testGradientsLlamaTiedLlama3Rope() throws { try checkGradients("llama_tied", recompute: true) }
    func testGradientsLlamaUntied() throws { try checkGradients("llama_untied", recompute: false) }
    func testGradientsLlamaUntiedRecompute() throws { try checkGradients("llama_untied", recompute: true) }
    func testGradientsQwen2BiasesWithRPO() throws { try checkGradients("qwen2_bias", recompute: true) }
    /// Gemma 3: sandwich (1 + w) norms, QK-norm, GeGLU, √hidden embedding scale, sliding and full layers with their
    /// own RoPE, sequences longer than the window; kept activations, recomputed layers, and several attention blocks.
    func testGradientsGemma3() throws {
        try checkGradients("gemma3", recompute: false)
        try checkGradients("gemma3", recompute: true)
        try checkGradients("gemma3", recompute: true, attentionBlock: 3)
    }
    /// Final-logit soft-capping and linear RoPE scaling on the full layer (the LM head backward recomputes logits).
    func testGradientsGemma3FinalSoftcap() throws { try checkGradients("gemma3_softcap", recompute: false) }
    /// Fixture sequences are 6–12 tokens: blocks of 1, 4 and 5 rows cover full, partial and ragged last blocks.
    func testGradientsCausalAttentionBlocks() throws {
        for blk in [1, 4, 5] {
            try checkGradients("llama_untied", recompute: false, attentionBlock: blk)
            try checkGradients("qwen2_bias", recompute: true, attentionBlock: blk)
        }
    }
    func testGradientsLogitsRecomputed() throws {
        try checkGradients("llama_untied", recompute: false, keepLogits: false)
        try checkGradients("llama_tied", recompute: true, keepLogits: false)
    }

    /// The default (nil) policy keeps activations under the budget and recomputes above it; both match.
    func testRecomputePolicyAndRepeatedBackward() throws {
        let w = try TrainingFixture.weights("llama_untied")
        let b = try TrainingFixture.batch("llama_untied")
        let seqs = (0..<b.prompts.count).map { TrainingSequence(tokens: b.chosen[$0], completionStart: b.prompts[$0].count) }
        let T = seqs.reduce(0) { $0 + $1.tokens.count }
        let d = (0..<seqs.count).map { Float($0 + 1) * 0.25 }
        var results: [[Float]] = []
        for budget in [Int.max, 0] {
            let model = try TrainingModel(weights: w)
            model.activationBudgetBytes = budget
            XCTAssertEqual(model.recomputes(tokens: T), budget == 0)
            _ = try model.forward(seqs)
            let g1 = ModelGradients(config: w.config), g2 = ModelGradients(config: w.config)
            try model.backward(dLogProbs: d, into: g1)
            try model.backward(dLogProbs: d, into: g2)   // the kept logits were consumed: this one recomputes them
            let a = g1.namedParameters.flatMap { $0.1.array }, c = g2.namedParameters.flatMap { $0.1.array }
            XCTAssertLessThan(TrainingFixture.relError(c, a), 1e-5)
            results.append(a)
        }
        XCTAssertLessThan(TrainingFixture.relError(results[1], results[0]), 1e-5)
        XCTAssertGreaterThan(TrainingModel.keptActivationBytes(tokens: T, config: w.config), 0)
    }

    func testForwardOnlyMatchesKeptForward() throws {
        let w = try TrainingFixture.weights("llama_untied")
        let b = try TrainingFixture.batch("llama_untied")
        let model = try TrainingModel(weights: w)
        let seqs = (0..<b.prompts.count).map { TrainingSequence(tokens: b.chosen[$0], completionStart: b.prompts[$0].count) }
        let a = try model.forward(seqs, keepForBackward: false)
        let c = try model.forward(seqs, keepForBackward: true)
        XCTAssertEqual(a, c)
        XCTAssertThrowsError(try model.forward([TrainingSequence(tokens: [1, 2], completionStart: 0)]))
        XCTAssertThrowsError(try model.forward([TrainingSequence(tokens: [1, 9999], completionStart: 1)]))
    }
}
