import Foundation
import XCTest
import TrainingFixtureSupport
import Tensors
@testable import Transformer

/// `neuronAttribution` against the weight gradients (checked against PyTorch autograd elsewhere): since only
/// down_proj reads a neuron's activation h_j, Σ_t h[t,j]·∂f/∂h[t,j] = Σ_i W_d[i,j] · ∂f/∂W_d[i,j] exactly.
final class NeuronAttributionTests: XCTestCase {
    func sequences(_ name: String) throws -> (ModelWeights, [TrainingSequence], Int) {
        let w = try TrainingFixture.weights(name)
        let b = try TrainingFixture.batch(name)
        let n = b.prompts.count
        var seqs: [TrainingSequence] = []
        for i in 0..<n { seqs.append(.init(tokens: b.chosen[i], completionStart: b.prompts[i].count)) }
        for i in 0..<n { seqs.append(.init(tokens: b.rejected[i], completionStart: b.prompts[i].count)) }
        return (w, seqs, n)
    }

    /// Σ_i W_d[i,j]·dW_d[i,j] per layer and neuron, from a full backward with weights gradients.
    func identityReference(_ w: ModelWeights, _ model: TrainingModel, _ seqs: [TrainingSequence], _ d: [Float],
                           ablate: NeuronSet? = nil) throws -> [Double] {
        let c = w.config, H = c.hiddenSize, I = c.intermediateSize
        _ = try model.forward(seqs, ablate: ablate)
        let grads = ModelGradients(config: c)
        try model.backward(dLogProbs: d, into: grads)
        var out = [Double](repeating: 0, count: c.numHiddenLayers * I)
        for l in 0..<c.numHiddenLayers {
            let wd = w.layers[l].downProj.pointer, gd = grads.storage.layers[l].downProj.pointer
            for i in 0..<H { for j in 0..<I { out[l * I + j] += Double(wd[i * I + j]) * Double(gd[i * I + j]) } }
        }
        return out
    }

    func maxRelative(_ a: [Double], _ b: [Double]) -> Double {
        var d = 0.0, m = 0.0
        for (x, y) in zip(a, b) { d = max(d, abs(x - y)); m = max(m, abs(y)) }
        return m == 0 ? d : d / m
    }

    func checkMargin(_ name: String, recompute: Bool) throws {
        let (w, seqs, n) = try sequences(name)
        let c = w.config, per = c.numHiddenLayers * c.intermediateSize
        let model = try TrainingModel(weights: w, recomputeLayers: recompute)
        let d = [Float](repeating: 1, count: n) + [Float](repeating: -1, count: n)
        let ref = try identityReference(w, model, seqs, d)
        _ = try model.forward(seqs)
        let a = try model.neuronAttribution(dLogProbs: d)
        XCTAssertEqual(a.count, seqs.count * per)
        var total = [Double](repeating: 0, count: per)
        for s in 0..<seqs.count { for j in 0..<per { total[j] += a[s * per + j] } }
        XCTAssertGreaterThan(ref.map(abs).max() ?? 0, 1e-6, "the reference must not be trivially zero")
        XCTAssertLessThan(maxRelative(total, ref), 1e-4, "\(name): Σ_t a·∂margin/∂a vs Σ_i W_d·∂W_d")

        // Per sequence: running each sequence alone gives its own slice of the batched result.
        for s in [0, seqs.count - 1] {
            _ = try model.forward([seqs[s]])
            let alone = try model.neuronAttribution(dLogProbs: [d[s]])
            let slice = Array(a[(s * per)..<((s + 1) * per)])
            XCTAssertLessThan(maxRelative(slice, alone), 1e-4, "\(name): sequence \(s) alone vs in the batch")
        }
    }

    func testMarginAttributionMatchesWeightGradientIdentity() throws { try checkMargin("llama_untied", recompute: false) }
    func testMarginAttributionRecomputedLayersTiedRope3() throws { try checkMargin("llama_tied", recompute: true) }
    func testMarginAttributionQwen2Biases() throws { try checkMargin("qwen2_bias", recompute: true) }

    /// Ablated neurons have zero activation, hence zero attribution; the others still match the identity.
    func testAblatedNeuronsScoreZero() throws {
        let (w, seqs, n) = try sequences("llama_untied")
        let b = try TrainingFixture.batch("llama_untied")
        let ns = try TrainingFixture.neuronSet(b, w.config)
        XCTAssertFalse(ns.isEmpty)
        let I = w.config.intermediateSize, per = w.config.numHiddenLayers * I
        let model = try TrainingModel(weights: w)
        let d = [Float](repeating: 1, count: n) + [Float](repeating: -1, count: n)
        let ref = try identityReference(w, model, seqs, d, ablate: ns)
        _ = try model.forward(seqs, ablate: ns)
        let a = try model.neuronAttribution(dLogProbs: d)
        var total = [Double](repeating: 0, count: per)
        for s in 0..<seqs.count { for j in 0..<per { total[j] += a[s * per + j] } }
        for (l, j) in b.neurons { XCTAssertEqual(total[l * I + j], 0) }
        XCTAssertLessThan(maxRelative(total, ref), 1e-4)
    }

    /// Without a forward that kept its state there is nothing to attribute.
    func testAttributionNeedsAForward() throws {
        let (w, _, _) = try sequences("llama_untied")
        let model = try TrainingModel(weights: w)
        XCTAssertThrowsError(try model.neuronAttribution(dLogProbs: [1]))
    }
}
