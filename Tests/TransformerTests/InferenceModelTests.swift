import XCTest
import Tensors
@testable import Transformer

final class InferenceModelTests: XCTestCase {
    static let names = ["tied", "llama3", "qwen2", "gemma3", "gemma3_softcap"]

    func testLogitsMatchTransformers() throws {
        for name in Self.names {
            let f = try Fixture.load(name)
            let out = try f.model.forward(sequences: f.manifest.sequences, logitsFor: .all)
            XCTAssertEqual(out.map { $0.shape }, f.manifest.sequences.map { [$0.count, f.manifest.vocab] })
            let err = relativeError(out.flatMap { $0.array }, try f.floats("logits.bin"))
            XCTAssertLessThan(err, 1e-4, name)
            print("\(name): logits relative error \(err)")
        }
    }

    func testRaggedBatchEqualsOneAtATime() throws {
        let f = try Fixture.load("qwen2")
        let batch = try f.model.forward(sequences: f.manifest.sequences)
        for (s, seq) in f.manifest.sequences.enumerated() {
            let single = try f.model.forward(sequences: [seq])[0]
            XCTAssertLessThan(relativeError(batch[s].array, single.array), 1e-6, "sequence \(s)")
        }
    }

    func testLastAndPositionSelections() throws {
        let f = try Fixture.load("llama3")
        let seqs = f.manifest.sequences
        let all = try f.model.forward(sequences: seqs)
        let last = try f.model.forward(sequences: seqs, logitsFor: .last)
        let picks = seqs.map { [0, $0.count - 1] }
        let chosen = try f.model.forward(sequences: seqs, logitsFor: .positions(picks))
        let V = f.manifest.vocab
        for s in seqs.indices {
            let n = seqs[s].count
            XCTAssertEqual(last[s].shape, [1, V])
            XCTAssertLessThan(relativeError(last[s].array, Array(all[s].array[((n - 1) * V)...])), 1e-6)
            XCTAssertLessThan(relativeError(chosen[s].array, Array(all[s].array[0..<V]) + Array(all[s].array[((n - 1) * V)...])), 1e-6)
        }
    }

    func testAblationAndTapMatchHooks() throws {
        for name in Self.names {
            let f = try Fixture.load(name)
            let seqs = f.manifest.sequences
            let total = seqs.reduce(0) { $0 + $1.count }
            let I = f.manifest.intermediate
            var tap = [Float](repeating: .nan, count: f.manifest.layers * total * I)
            var offsets = [0]
            for s in seqs { offsets.append(offsets.last! + s.count) }
            var calls = 0
            let out = try f.model.forward(sequences: seqs, ablation: f.ablation) { layer, s, acts, rows in
                calls += 1
                XCTAssertEqual(rows, seqs[s].count)
                XCTAssertEqual(acts.count, rows * I)
                for i in 0..<acts.count { tap[(layer * total + offsets[s]) * I + i] = acts[i] }
            }
            XCTAssertEqual(calls, f.manifest.layers * seqs.count)
            let ablatedErr = relativeError(out.flatMap { $0.array }, try f.floats("ablated.bin"))
            XCTAssertLessThan(ablatedErr, 1e-4, name)
            XCTAssertLessThan(relativeError(tap, try f.floats("tap.bin")), 1e-4, name)
            // The ablation must matter, or this test proves nothing.
            XCTAssertGreaterThan(relativeError(out.flatMap { $0.array }, try f.floats("logits.bin")), 1e-3, name)
            for (l, js) in f.ablation.perLayer.enumerated() {
                for j in js { for r in 0..<total { XCTAssertEqual(tap[(l * total + r) * I + j], 0) } }
            }
        }
    }

    func testCompletionLogProbs() throws {
        for name in Self.names {
            let f = try Fixture.load(name)
            let m = f.manifest
            for (ablation, expected) in [(nil, m.logprobs), (f.ablation, m.logprobs_ablated)] as [(NeuronSet?, [Double])] {
                let got = try f.model.sequenceLogProbs(sequences: m.sequences, completionStarts: m.completion_starts, ablation: ablation)
                for s in got.indices {
                    XCTAssertEqual(got[s].tokens, m.sequences[s].count - m.completion_starts[s])
                    XCTAssertEqual(got[s].logprob, expected[s], accuracy: 1e-4 * max(1, abs(expected[s])), "\(name) seq \(s)")
                }
            }
        }
    }

    func testCompletionLogProbsWithCachedPromptsMatchFullForward() throws {
        for name in Self.names {
            let f = try Fixture.load(name)
            let m = f.manifest
            let full = try f.model.sequenceLogProbs(sequences: m.sequences, completionStarts: m.completion_starts)
            let cache = PrefixCache()
            // The first call fills the cache, the second reads it; both must equal the full forward.
            for pass in 0..<2 {
                let got = try f.model.completionLogProbs(sequences: m.sequences, completionStarts: m.completion_starts, prefixes: cache)
                for s in got.indices {
                    XCTAssertEqual(got[s].tokens, full[s].tokens)
                    XCTAssertEqual(got[s].logprob, full[s].logprob, accuracy: 1e-4 * max(1, abs(full[s].logprob)), "\(name) pass \(pass) seq \(s)")
                }
            }
            XCTAssertEqual(cache.count, Set(m.sequences.indices.map { Array(m.sequences[$0][..<(m.completion_starts[$0] - 1)]) }.filter { !$0.isEmpty }).count)
            // A new completion of a cached prompt.
            let seq = m.sequences[0], start = m.completion_starts[0]
            let other = Array(seq[..<start]) + seq[start...].reversed()
            let want = try f.model.sequenceLogProbs(sequences: [other], completionStarts: [start])[0]
            let got = try f.model.completionLogProbs(sequences: [other], completionStarts: [start], prefixes: cache)[0]
            XCTAssertEqual(got.logprob, want.logprob, accuracy: 1e-4 * max(1, abs(want.logprob)), name)
        }
    }

    /// Shared prompt tokens computed once (a few-shot block for all, one question's context for its choices)
    /// give the log-probabilities of scoring every sequence alone, with and without ablation.
    func testSharedPrefixLogProbsEqualScoringAlone() throws {
        for name in Self.names {
            let f = try Fixture.load(name)
            let m = f.manifest
            let block = Array(m.sequences[0].prefix(5)) + [3, 1, 4, 1, 5]
            var seqs: [[Int]] = [], starts: [Int] = []
            for (s, seq) in m.sequences.enumerated() {
                let start = m.completion_starts[s]
                // Two choices per prompt: the completion and its reverse, after the shared block.
                for completion in [Array(seq[start...]), Array(seq[start...].reversed())] {
                    seqs.append(block + Array(seq[..<start]) + completion); starts.append(block.count + start)
                }
            }
            // A sequence whose prompt is only the shared block, and one completion of a single token.
            seqs.append(block + [7, 8]); starts.append(block.count)
            let ablation = try NeuronSet(layerCount: f.model.config.numHiddenLayers, intermediateSize: f.model.config.intermediateSize,
                                         pairs: [(0, 1), (f.model.config.numHiddenLayers - 1, 2)])
            for ab in [nil, ablation] {
                let want = try f.model.sequenceLogProbs(sequences: seqs, completionStarts: starts, ablation: ab)
                let got = try f.model.sharedPrefixLogProbs(sequences: seqs, completionStarts: starts, ablation: ab)
                for s in got.indices {
                    XCTAssertEqual(got[s].tokens, want[s].tokens)
                    XCTAssertEqual(got[s].logprob, want[s].logprob, accuracy: 1e-4 * max(1, abs(want[s].logprob)), "\(name) seq \(s) ablated \(ab != nil)")
                }
            }
            XCTAssertEqual(try f.model.sharedPrefixLogProbs(sequences: [], completionStarts: []).count, 0)
        }
    }

    func testPromptsSharingAPrefixGenerateAsAlone() throws {
        let f = try Fixture.load("llama3")
        f.model.decodeWeights = .f32
        let head = Array(f.manifest.prompts[0].prefix(3))
        let shared = head + head + head + [5, 9, 2]   // ≥ 8 shared tokens: the prefix is computed once
        let prompts = f.manifest.prompts.map { shared + $0 }
        XCTAssertEqual(InferenceModel.sharedPrefixLength(prompts), shared.count + InferenceModel.sharedPrefixLength(f.manifest.prompts))
        let together = try f.model.generate(prompts: prompts, maxNewTokens: 10)
        for (p, want) in zip(prompts, together) {
            XCTAssertEqual(try f.model.generate(prompts: [p], maxNewTokens: 10), [want])
        }
        XCTAssertEqual(InferenceModel.sharedPrefixLength([[1, 2, 3], [1, 2, 3]]), 2)
        XCTAssertEqual(InferenceModel.sharedPrefixLength([[1, 2], [3]]), 0)
    }

    func testGreedyGenerationMatchesTransformers() throws {
        for name in Self.names {
            let f = try Fixture.load(name)
            f.model.decodeWeights = .f32   // parity with PyTorch is for the exact path (int8 is tested below)
            let m = f.manifest
            // Together (ragged prefill + batched decode) and one at a time.
            let batched = try f.model.generate(prompts: m.prompts, maxNewTokens: 12)
            XCTAssertEqual(batched, m.greedy, name)
            for (p, want) in zip(m.prompts, m.greedy) {
                XCTAssertEqual(try f.model.generate(prompts: [p], maxNewTokens: 12), [want], name)
            }
        }
    }

    func testStopTokensAndCallback() throws {
        let f = try Fixture.load("tied")
        f.model.decodeWeights = .f32   // compares with the PyTorch greedy tokens
        let m = f.manifest
        let stop = m.greedy[0][3]
        var seen: [[Int]] = [[], []]
        let out = try f.model.generate(prompts: m.prompts, maxNewTokens: 12, stopTokens: [stop]) { s, t in seen[s].append(t) }
        let cut0 = m.greedy[0].firstIndex(of: stop)!
        XCTAssertEqual(out[0], Array(m.greedy[0][...cut0]))
        let cut1 = m.greedy[1].firstIndex(of: stop).map { Array(m.greedy[1][...$0]) } ?? m.greedy[1]
        XCTAssertEqual(out[1], cut1)
        XCTAssertEqual(seen, out)
    }

    /// Logits from a ragged prefill + one-token cached steps equal a full forward pass.
    func testKVCacheDecodingMatchesFullForward() throws {
        for name in Self.names {
            let f = try Fixture.load(name)
            f.model.decodeWeights = .f32   // the exact path; int8 decoding has its own test below
            let seqs = f.manifest.sequences.filter { $0.count >= 3 }
            let full = try f.model.forward(sequences: seqs)
            let V = f.manifest.vocab
            let session = try DecodeSession(model: f.model, slots: seqs.count, maxLength: seqs.map { $0.count }.max()!)
            // Prefix lengths differ per sequence (ragged prefill), slots in reverse order.
            let prefix = seqs.indices.map { 1 + $0 % 2 }
            let slots = Array(seqs.indices.reversed())
            let first = try session.append(seqs.indices.map { Array(seqs[$0][0..<prefix[$0]]) }, to: slots)
            for s in seqs.indices {
                let p = prefix[s] - 1
                XCTAssertLessThan(relativeError(Array(first.buffer[(s * V)..<((s + 1) * V)]),
                                                Array(full[s].array[(p * V)..<((p + 1) * V)])), 1e-5)
            }
            var steps = 0
            while true {
                let active = seqs.indices.filter { session.lengths[slots[$0]] < seqs[$0].count }
                if active.isEmpty { break }
                let logits = try session.append(active.map { [seqs[$0][session.lengths[slots[$0]]]] },
                                                to: active.map { slots[$0] })
                for (i, s) in active.enumerated() {
                    let pos = session.lengths[slots[s]] - 1
                    let got = Array(logits.buffer[(i * V)..<((i + 1) * V)])
                    let want = Array(full[s].array[(pos * V)..<((pos + 1) * V)])
                    XCTAssertLessThan(relativeError(got, want), 1e-5, "\(name) seq \(s) pos \(pos)")
                    steps += 1
                }
            }
            XCTAssertGreaterThan(steps, 10)
            let longest = seqs.indices.max { seqs[$0].count < seqs[$1].count }!
            XCTAssertThrowsError(try session.append([[1]], to: [slots[longest]]))   // that slot is full
            XCTAssertThrowsError(try session.append([[1], [2]], to: [0, 0]))
        }
    }

    /// int8 decode steps stay close to the f32 logits (the tiny random fixtures have near-flat logits, so
    /// they are not expected to keep every greedy token; see testGreedyGenerationWithF32DecodeWeights).
    func testInt8DecodeStepsTrackF32() throws {
        // Soft-capped logits are squeezed into (−cap, cap), so an error relative to their largest value is not the
        // quantity this bound was set for; the uncapped Gemma 3 fixture covers int8 decoding of its recipe.
        for name in Self.names where name != "gemma3_softcap" {
            let f = try Fixture.load(name)
            let seqs = f.manifest.sequences.filter { $0.count >= 3 }
            let full = try f.model.forward(sequences: seqs)
            let V = f.manifest.vocab
            f.model.decodeWeights = .int8
            let session = try DecodeSession(model: f.model, slots: seqs.count, maxLength: seqs.map { $0.count }.max()!)
            var worst: Float = 0
            _ = try session.append(seqs.map { [$0[0]] }.prefix(Int8Matrix.maxBatch).map { $0 },
                                   to: Array(0..<min(seqs.count, Int8Matrix.maxBatch)))
            for s in 0..<min(seqs.count, Int8Matrix.maxBatch) {
                for pos in 1..<seqs[s].count {
                    let logits = try session.append([[seqs[s][pos]]], to: [s])
                    let want = Array(full[s].array[(pos * V)..<((pos + 1) * V)])
                    worst = max(worst, relativeError(logits.array, want))
                }
            }
            XCTAssertLessThan(worst, 6e-2, name)
            XCTAssertGreaterThan(worst, 0, "\(name): int8 steps should not be bit-identical to f32")
        }
    }

    /// `auto` is the default for decode steps; `.f32` is the exact opt-out. The random f32 fixtures are not
    /// exactly representable in compact form, so `auto` decodes them with the f32 weights: greedy output is
    /// then the exact f32 output, whatever the number of rows per step.
    func testDecodeWeightsDefaultIsAutoWithExactOptOut() throws {
        XCTAssertEqual(DecodeWeights(rawValue: "f32"), .f32)
        if getenv("SAFENEURON_DECODE_WEIGHTS") == nil { XCTAssertEqual(DecodeWeights.environmentDefault, .auto) }
        for name in Self.names {
            let f = try Fixture.load(name)
            f.model.decodeWeights = .auto
            XCTAssertNil(f.model.compactWeightsForDecode(), "\(name): random f32 weights are not exactly compactable")
            for (p, want) in zip(f.manifest.prompts, f.manifest.greedy) {
                XCTAssertEqual(try f.model.generate(prompts: [p], maxNewTokens: 12), [want], name)
            }
        }
        for name in Self.names {
            let f = try Fixture.load(name)
            f.model.decodeWeights = .f32
            for (p, want) in zip(f.manifest.prompts, f.manifest.greedy) {
                XCTAssertEqual(try f.model.generate(prompts: [p], maxNewTokens: 12), [want], name)
            }
        }
    }

    func testInt8CopiesFollowInPlaceWeightChanges() throws {
        let f = try Fixture.load("tied")
        f.model.decodeWeights = .int8
        let seq = f.manifest.sequences.max { $0.count < $1.count }!
        let V = f.manifest.vocab
        func lastStep() throws -> [Float] {
            let session = try DecodeSession(model: f.model, slots: 1, maxLength: seq.count)
            _ = try session.append([Array(seq.dropLast())], to: [0])
            return try session.append([[seq.last!]], to: [0]).array
        }
        _ = try lastStep()   // builds the int8 copies from the original weights
        let old = try f.model.forward(sequences: [seq], logitsFor: .last)[0].array
        for l in f.model.weights.layers { for i in 0..<l.downProj.count { l.downProj[i] *= 3 } }
        let new = try f.model.forward(sequences: [seq], logitsFor: .last)[0].array
        XCTAssertGreaterThan(relativeError(new, old), 0.1, "the edit must matter for this test to mean anything")
        let got = try lastStep()
        XCTAssertEqual(got.count, V)
        XCTAssertLessThan(relativeError(got, new), 6e-2)
    }

    func testSeededSampling() throws {
        let f = try Fixture.load("qwen2")
        let p = f.manifest.prompts
        let a = try f.model.generate(prompts: p, maxNewTokens: 10, sampling: .sample(temperature: 1.2, topP: 0.9, seed: 7))
        let b = try f.model.generate(prompts: p, maxNewTokens: 10, sampling: .sample(temperature: 1.2, topP: 0.9, seed: 7))
        let c = try f.model.generate(prompts: p, maxNewTokens: 10, sampling: .sample(temperature: 1.2, topP: 0.9, seed: 8))
        XCTAssertEqual(a, b)
        XCTAssertNotEqual(a, c)
        // Sequence i draws from stream i whatever else is in the batch.
        let alone = try f.model.generate(prompts: [p[0]], maxNewTokens: 10, sampling: .sample(temperature: 1.2, topP: 0.9, seed: 7))
        XCTAssertEqual(alone[0], a[0])
        XCTAssertEqual(a[1].count, 10)
        // A tiny nucleus keeps only the top token: greedy.
        let narrow = try f.model.generate(prompts: p, maxNewTokens: 12, sampling: .sample(temperature: 1, topP: 1e-6, seed: 3))
        XCTAssertEqual(narrow, f.manifest.greedy)
        let cold = try f.model.generate(prompts: p, maxNewTokens: 12, sampling: .sample(temperature: 0, topP: 1, seed: 3))
        XCTAssertEqual(cold, f.manifest.greedy)
    }

    func testSplitMix64IsStable() {
        var g = SplitMix64(seed: 42)
        let first = (0..<3).map { _ in g.next() }
        var h = SplitMix64(seed: 42)
        XCTAssertEqual(first, (0..<3).map { _ in h.next() })
        var other = SplitMix64(seed: 42, stream: 1)
        XCTAssertNotEqual(first[0], other.next())
        for _ in 0..<1000 { let u = g.nextUnit(); XCTAssertTrue(u >= 0 && u < 1) }
    }

    func testInvalidInputsThrow() throws {
        let f = try Fixture.load("tied")
        XCTAssertThrowsError(try f.model.forward(sequences: [[]]))
        XCTAssertThrowsError(try f.model.forward(sequences: [[1, 300]]))
        XCTAssertThrowsError(try f.model.forward(sequences: [[1, -1]]))
        XCTAssertThrowsError(try f.model.forward(sequences: [[1, 2]], logitsFor: .positions([[2]])))
        XCTAssertThrowsError(try f.model.sequenceLogProbs(sequences: [[1, 2]], completionStarts: [0]))
        XCTAssertThrowsError(try f.model.forward(sequences: [[1]], ablation: NeuronSet(layerCount: 2)))
        XCTAssertThrowsError(try f.model.generate(prompts: [[1]], maxNewTokens: -1))
        let w = ModelWeights(config: f.model.config)
        w.layers[1].upProj = Tensor(shape: [3, 3])
        XCTAssertThrowsError(try InferenceModel(weights: w)) { e in
            XCTAssertEqual(e as? TransformerError, .shapeMismatch(source: "InferenceModel", name: "model.layers.1.mlp.up_proj.weight",
                                                                   expected: [96, 64], found: [3, 3]))
        }
    }
}
