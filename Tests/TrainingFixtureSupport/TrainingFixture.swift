import Foundation
import XCTest
import Tensors
import Transformer

/// Test-only loader for the training fixtures: a minimal safetensors (f32) parser, a config.json mapper,
/// and the raw-f32 + JSON-manifest tensor bundles written by scripts/reference/make_training_fixtures.py.
/// Shared by TransformerTests and AlignmentTests.
public enum TrainingFixture {
    public static var root: URL {
        var u = URL(fileURLWithPath: #filePath)
        while u.lastPathComponent != "Tests" { u.deleteLastPathComponent() }
        return u.appendingPathComponent("TransformerTests/Fixtures/training")
    }

    public struct Failure: Error, CustomStringConvertible { public var description: String }

    public static func config(_ name: String) throws -> ModelConfig {
        let data = try Data(contentsOf: root.appendingPathComponent("\(name)/config.json"))
        return try Architectures.config(fromHF: data, source: "\(name)/config.json")
    }

    /// name → (shape, values) from a safetensors file holding only F32 tensors.
    public static func safetensors(_ url: URL) throws -> [String: ([Int], [Float])] {
        let data = try Data(contentsOf: url)
        guard data.count >= 8 else { throw Failure(description: "short safetensors") }
        let n = data.prefix(8).withUnsafeBytes { Int($0.loadUnaligned(as: UInt64.self).littleEndian) }
        guard n > 0, 8 + n <= data.count else { throw Failure(description: "bad header length") }
        guard let header = try JSONSerialization.jsonObject(with: data.subdata(in: 8..<(8 + n))) as? [String: Any] else {
            throw Failure(description: "bad header")
        }
        var out: [String: ([Int], [Float])] = [:]
        for (name, v) in header where name != "__metadata__" {
            guard let e = v as? [String: Any], e["dtype"] as? String == "F32", let shape = e["shape"] as? [Int],
                  let offs = e["data_offsets"] as? [Int], offs.count == 2 else { throw Failure(description: "tensor \(name)") }
            let lo = 8 + n + offs[0], hi = 8 + n + offs[1]
            guard lo <= hi, hi <= data.count, (hi - lo) == shape.reduce(1, *) * 4 else { throw Failure(description: "range \(name)") }
            out[name] = (shape, floats(data, lo, hi))
        }
        return out
    }

    public static func floats(_ data: Data, _ lo: Int, _ hi: Int) -> [Float] {
        data.subdata(in: lo..<hi).withUnsafeBytes { raw in
            (0..<((hi - lo) / 4)).map { Float(bitPattern: UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: $0 * 4, as: UInt32.self))) }
        }
    }

    public static func weights(_ name: String) throws -> ModelWeights {
        let c = try config(name)
        let w = ModelWeights(config: c)
        let t = try safetensors(root.appendingPathComponent("\(name)/model.safetensors"))
        for (n, tensor) in w.namedParameters {
            guard let (shape, vals) = t[n] else { throw Failure(description: "missing \(n)") }
            guard shape == tensor.shape else { throw Failure(description: "shape \(n) \(shape) vs \(tensor.shape)") }
            vals.withUnsafeBufferPointer { tensor.pointer.update(from: $0.baseAddress!, count: vals.count) }
        }
        return w
    }

    /// A bundle `stem.bin` + `stem.json` ([{name, shape, offset}] in floats).
    public static func bundle(_ name: String, _ stem: String) throws -> [String: [Float]] {
        let dir = root.appendingPathComponent(name)
        let bin = try Data(contentsOf: dir.appendingPathComponent("\(stem).bin"))
        let man = try JSONSerialization.jsonObject(with: Data(contentsOf: dir.appendingPathComponent("\(stem).json"))) as! [[String: Any]]
        var out: [String: [Float]] = [:]
        for e in man {
            let n = e["name"] as! String, shape = e["shape"] as! [Int], off = e["offset"] as! Int
            let count = shape.reduce(1, *)
            out[n] = floats(bin, off * 4, (off + count) * 4)
        }
        return out
    }

    public struct Batch {
        public var prompts: [[Int]], chosen: [[Int]], rejected: [[Int]]
        public var beta: Double, rpoAlpha: Double?, neurons: [(Int, Int)]
        public var ref: [(Double, Double)], policyChosen: [Double], policyRejected: [Double], loss: Double
        public var raw: [String: Any]
    }

    public static func batch(_ name: String) throws -> Batch {
        let j = try JSONSerialization.jsonObject(with: Data(contentsOf: root.appendingPathComponent("\(name)/batch.json"))) as! [String: Any]
        let ex = j["examples"] as! [[String: [Int]]]
        return Batch(prompts: ex.map { $0["prompt"]! }, chosen: ex.map { $0["chosen"]! }, rejected: ex.map { $0["rejected"]! },
                     beta: j["beta"] as! Double, rpoAlpha: j["rpo_alpha"] as? Double,
                     neurons: (j["neurons"] as! [[Int]]).map { ($0[0], $0[1]) },
                     ref: (j["ref_logps"] as! [[Double]]).map { ($0[0], $0[1]) },
                     policyChosen: j["policy_chosen_logps"] as! [Double], policyRejected: j["policy_rejected_logps"] as! [Double],
                     loss: j["loss"] as! Double, raw: j)
    }

    public static func neuronSet(_ b: Batch, _ c: ModelConfig) throws -> NeuronSet {
        try NeuronSet(layerCount: c.numHiddenLayers, intermediateSize: c.intermediateSize,
                      pairs: b.neurons.map { (layer: $0.0, neuron: $0.1) })
    }

    /// max |a − b| / max |b|
    public static func relError(_ a: [Float], _ b: [Float]) -> Double {
        var d = 0.0, m = 0.0
        for (x, y) in zip(a, b) { d = max(d, Double(abs(x - y))); m = max(m, Double(abs(y))) }
        return m == 0 ? d : d / m
    }
}
