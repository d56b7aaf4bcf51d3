import Foundation
import Tensors
import Transformer
import XCTest
@testable import SafetyNeurons

final class NeuronsFileTests: XCTestCase {
    var dir: URL!

    override func setUpWithError() throws {
        dir = FileManager.default.temporaryDirectory.appendingPathComponent("neurons-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws { try? FileManager.default.removeItem(at: dir) }

    func referenceScores() throws -> (NeuronCase, NeuronScores) {
        let c = try Fixtures.loadCase()
        let (h, s) = try Fixtures.activations(c)
        let st = ActivationStatistics(layers: c.layers, intermediateSize: c.intermediate_size)
        let w = c.intermediate_size
        for (g, src, n) in [(PromptGroup.harmful, h, c.harmful), (.harmless, s, c.harmless)] {
            for p in 0..<n { for l in 0..<c.layers {
                let o = (p * c.layers + l) * w
                src[o..<o + w].withUnsafeBufferPointer { st.add(pooled: $0, layer: l, group: g) }
            } }
        }
        return (c, try st.scores())
    }

    func makeFile(topK: Int? = 5, rounds: Int? = nil) throws -> (NeuronsFile, NeuronSelection) {
        let (c, sc) = try referenceScores()
        let sel = try sc.select(tauES: c.tau_es, tauSAS: c.tau_sas, topK: topK)
        return (NeuronsFile(model: "Smol \"LM\"\\2", pool: .mean, tauES: c.tau_es, tauSAS: c.tau_sas,
                            scores: sc, selection: sel, rounds: rounds), sel)
    }

    func testRoundTripAndSets() throws {
        let (file, sel) = try makeFile(rounds: 2)
        let url = dir.appendingPathComponent("neurons.json")
        try file.write(to: url)
        let back = try NeuronsFile.read(from: url)
        XCTAssertEqual(back, file)
        XCTAssertEqual(try back.set(named: "es"), sel.es)
        XCTAssertEqual(try back.set(named: "sas"), sel.sas)
        XCTAssertEqual(try back.set(named: "union"), sel.union)
        XCTAssertEqual(try back.set(named: "topk"), sel.topK)
        XCTAssertEqual(back.topK, 5)
        XCTAssertEqual(back.rounds, 2)
        XCTAssertEqual(back.pooling, .mean)
        XCTAssertThrowsError(try back.set(named: "all"))
        // Only the target is left behind: the temp file was renamed away.
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir.path), ["neurons.json"])

        // Overwriting an existing file works (rename replaces it).
        let (noTop, _) = try makeFile(topK: nil)
        try noTop.write(to: url)
        let back2 = try NeuronsFile.read(from: url)
        XCTAssertNil(back2.topK)
        XCTAssertNil(back2.sets.topk)
        XCTAssertThrowsError(try back2.set(named: "topk"))
    }

    func testTextLayout() throws {
        let (file, _) = try makeFile()
        let text = file.jsonText()
        let keys = ["\"format\": \"safeneuron.neurons/1\"", "\"model\":", "\"pool\": \"mean\"", "\"tau_es\": 0.9",
                    "\"tau_sas\": 2.0", "\"layers\": 5", "\"intermediate_size\": 48", "\"harmful\": 37",
                    "\"harmless\": 41", "\"top_k\": 5", "\"sets\": {", "\"es\": [", "\"sas\": [", "\"union\": [",
                    "\"topk\": [", "\"counts\": {\"es\": 6, \"sas\": 8, \"union\": 9, \"topk\": 5}"]
        var last = text.startIndex
        for k in keys {
            guard let r = text.range(of: k, range: last..<text.endIndex) else { XCTFail("missing or out of order: \(k)"); continue }
            last = r.upperBound
        }
        XCTAssertTrue(text.contains("[0, 3], [0, 7], [0, 11], [1, 9], [2, 1], [2, 30], [3, 2], [3, 26], [3, 47]"))
        // Standard JSON, and the model name survives escaping.
        let obj = try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any]
        XCTAssertEqual(obj?["model"] as? String, "Smol \"LM\"\\2")
        XCTAssertEqual((obj?["sets"] as? [String: Any])?["union"] as? [[Int]], file.sets.union)
    }

    /// Each mutation of a valid file must be rejected with an error naming the file and the problem.
    func testRejectsMalformedFiles() throws {
        let (file, _) = try makeFile()
        let good = file.jsonText()
        func replacing(_ a: String, _ b: String) -> String {
            XCTAssertTrue(good.contains(a), "fixture text lacks \(a)")
            return good.replacingOccurrences(of: a, with: b)
        }
        let cases: [(String, String, String)] = [
            ("format", replacing("safeneuron.neurons/1", "safeneuron.neurons/2"), "format"),
            ("pool", replacing("\"pool\": \"mean\"", "\"pool\": \"median\""), "pool"),
            ("layers", replacing("\"layers\": 5", "\"layers\": 0"), "layers"),
            ("size", replacing("\"intermediate_size\": 48", "\"intermediate_size\": -1"), "intermediate_size"),
            ("neuron range", replacing("[3, 47]", "[3, 48]"), "outside"),
            ("layer range", replacing("[3, 47]", "[5, 47]"), "outside"),
            ("negative", replacing("[0, 3], [0, 7], [0, 11], [1, 9], [2, 30]\n", "[-1, 3], [0, 7], [0, 11], [1, 9], [2, 30]\n"), "outside"),
            ("triple", replacing("[3, 47]", "[3, 47, 1]"), "3 elements"),
            ("unsorted", replacing("[0, 3], [0, 7], [0, 11], [1, 9], [2, 30]\n", "[0, 7], [0, 3], [0, 11], [1, 9], [2, 30]\n"), "sorted"),
            ("count", replacing("\"union\": 9", "\"union\": 8"), "counts.union"),
            ("union", replacing("[2, 30], [3, 2], [3, 26]", "[2, 30], [3, 3], [3, 26]"), "union of"),
            ("topk count", replacing("\"top_k\": 5", "\"top_k\": 4"), "top_k"),
            ("topk missing", replacing("\"top_k\": 5,\n", ""), "top_k"),
            ("type", replacing("\"harmful\": 37", "\"harmful\": \"37\""), "harmful"),
            ("missing key", replacing("\"tau_sas\": 2.0,\n", ""), "tau_sas"),
            ("syntax", String(good.dropLast(3)), "JSON"),
            ("empty", "", "JSON"),
            ("stray", replacing("\"layers\": 5,", "\"layers\": 5x,"), "character"),
        ]
        for (name, text, expect) in cases {
            let url = dir.appendingPathComponent("bad-\(name.replacingOccurrences(of: " ", with: "_")).json")
            try Data(text.utf8).write(to: url)
            XCTAssertThrowsError(try NeuronsFile.read(from: url), name) { e in
                let msg = "\(e)"
                XCTAssertTrue(msg.contains(url.lastPathComponent), "\(name): \(msg)")
                XCTAssertTrue(msg.contains(expect), "\(name): expected '\(expect)' in \(msg)")
            }
        }
        XCTAssertThrowsError(try NeuronsFile.read(from: dir.appendingPathComponent("absent.json"))) { e in
            XCTAssertTrue("\(e)".contains("absent.json"))
        }
        // Extra keys are tolerated.
        let url = dir.appendingPathComponent("extra.json")
        try Data(replacing("\"harmless\": 41,", "\"harmless\": 41, \"note\": {\"x\": [1]},").utf8).write(to: url)
        XCTAssertEqual(try NeuronsFile.read(from: url), file)
    }

    func testExportAndSummary() throws {
        let (c, sc) = try referenceScores()
        let sel = try sc.select(tauES: c.tau_es, tauSAS: c.tau_sas, topK: c.top_k)
        let t = sc.exportTensors()
        XCTAssertEqual(Set(t.keys), Set(NeuronScores.exportNames))
        for (_, v) in t { XCTAssertEqual(v.shape, [c.layers, c.intermediate_size]) }
        let i = 1 * c.intermediate_size + 9
        XCTAssertEqual(t["d"]![i], Float(c.d[i]))
        XCTAssertEqual(t["z"]![i], Float(c.z[i]))
        XCTAssertEqual(t["delta"]![i], Float(c.delta[i]))
        XCTAssertEqual(t["std_harmless"]![i], Float(c.var_harmless[i].squareRoot()), accuracy: 1e-6)
        XCTAssertTrue(t["d"]![2 * c.intermediate_size].isNaN)

        let rows = sc.layerSummary(sel)
        XCTAssertEqual(rows.map(\.es), (0..<c.layers).map { l in c.es.filter { $0[0] == l }.count })
        XCTAssertEqual(rows.map(\.sas), (0..<c.layers).map { l in c.sas.filter { $0[0] == l }.count })
        XCTAssertEqual(rows.map(\.union), (0..<c.layers).map { l in c.union.filter { $0[0] == l }.count })
        XCTAssertEqual(rows.map { $0.topK ?? -1 }, (0..<c.layers).map { l in c.topk.filter { $0[0] == l }.count })
        let d0 = c.d[0..<c.intermediate_size].filter(\.isFinite).map(abs)
        XCTAssertEqual(rows[0].meanAbsD, d0.reduce(0, +) / Double(d0.count), accuracy: 1e-9)
        XCTAssertTrue(rows[4].meanAbsD.isNaN, "flat layer has no finite d")

        let md = LayerSummary.markdownTable(rows)
        let lines = md.split(separator: "\n")
        XCTAssertEqual(lines.count, 2 + c.layers + 1)
        XCTAssertTrue(lines[0].hasPrefix("| layer | ES | SAS | union | top-k |"))
        XCTAssertTrue(lines.last!.hasPrefix("| **all** | 6 | 8 | 9 | 5 |"), String(lines.last!))
        XCTAssertTrue(lines[2 + 4].hasSuffix("| – |"), String(lines[6]))
    }

    func testZeroDownProjColumnsEqualsAblation() throws {
        let cfg = ModelConfig(vocabSize: 16, hiddenSize: 8, intermediateSize: 12, numHiddenLayers: 3,
                              numAttentionHeads: 2, numKeyValueHeads: 1)
        let w = ModelWeights(config: cfg)
        var rng = SplitMix64(state: 3)
        for layer in w.layers {
            for i in 0..<layer.downProj.count { layer.downProj[i] = Float.random(in: -1...1, using: &rng) }
        }
        let before = w.layers.map { $0.downProj.copy() }
        let set = try NeuronSet(layerCount: 3, intermediateSize: 12, pairs: [(0, 0), (0, 11), (2, 5)])
        XCTAssertEqual(try zeroDownProjColumns(w, set: set), 3)
        for l in 0..<3 {
            let a = Tensor(shape: [1, 12], values: (0..<12).map { Float($0) * 0.25 - 1 })
            let ablated = a.copy()
            for j in set.perLayer[l] { ablated[j] = 0 }
            let y1 = Tensor(shape: [1, 8]), y2 = Tensor(shape: [1, 8])
            BLAS.linear(a.pointer, count: 1, inFeatures: 12, weight: w.layers[l].downProj.pointer, outFeatures: 8, into: y1.pointer)
            BLAS.linear(ablated.pointer, count: 1, inFeatures: 12, weight: before[l].pointer, outFeatures: 8, into: y2.pointer)
            for r in 0..<8 { XCTAssertEqual(y1[r], y2[r], accuracy: 1e-5) }
            for r in 0..<8 { for j in 0..<12 {
                let v = w.layers[l].downProj[r * 12 + j]
                if set.contains(layer: l, neuron: j) { XCTAssertEqual(v, 0) } else { XCTAssertEqual(v, before[l][r * 12 + j]) }
            } }
        }
        XCTAssertThrowsError(try zeroDownProjColumns(w, set: NeuronSet(layerCount: 2)))
        let wide = try NeuronSet(layerCount: 3, intermediateSize: 20, pairs: [(1, 15)])
        XCTAssertThrowsError(try zeroDownProjColumns(w, set: wide))
    }
}
