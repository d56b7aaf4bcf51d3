import Foundation
import XCTest
import Tensors
import Transformer

/// Test-only loading of the HF fixtures (the real loaders live in ModelFiles/Runtime).
enum Fixture {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures")

    struct Manifest: Decodable {
        let sequences: [[Int]]
        let completion_starts: [Int]
        let logprobs: [Double]
        let logprobs_ablated: [Double]
        let ablation: [String: [Int]]
        let prompts: [[Int]]
        let greedy: [[Int]]
        let vocab: Int
        let layers: Int
        let intermediate: Int
    }

    struct Loaded {
        let model: InferenceModel
        let manifest: Manifest
        let folder: URL
        var ablation: NeuronSet {
            let pairs = manifest.ablation.flatMap { k, v in v.map { (layer: Int(k)!, neuron: $0) } }
            return try! NeuronSet(layerCount: manifest.layers, intermediateSize: manifest.intermediate, pairs: pairs)
        }
        func floats(_ name: String) throws -> [Float] { try Fixture.floats(folder.appendingPathComponent(name)) }
    }

    static func load(_ name: String) throws -> Loaded {
        let folder = root.appendingPathComponent(name)
        let config = try mapConfig(Data(contentsOf: folder.appendingPathComponent("config.json")))
        let tensors = try readSafetensors(Data(contentsOf: folder.appendingPathComponent("model.safetensors")))
        let weights = ModelWeights(config: config)
        for (n, t) in weights.namedParameters {
            guard let src = tensors[n] else { throw TransformerError.missingTensor(source: name, name: n) }
            XCTAssertEqual(src.shape, t.shape, n)
            XCTAssertEqual(src.values.count, t.count, n)
            src.values.withUnsafeBufferPointer { t.pointer.update(from: $0.baseAddress!, count: t.count) }
        }
        let manifest = try JSONDecoder().decode(Manifest.self, from: Data(contentsOf: folder.appendingPathComponent("manifest.json")))
        return Loaded(model: try InferenceModel(weights: weights), manifest: manifest, folder: folder)
    }

    static func floats(_ url: URL) throws -> [Float] {
        let d = try Data(contentsOf: url)
        return d.withUnsafeBytes { raw in
            (0..<(d.count / 4)).map { Float(bitPattern: UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: $0 * 4, as: UInt32.self))) }
        }
    }

    static func mapConfig(_ data: Data) throws -> ModelConfig {
        try Architectures.config(fromHF: data, source: "fixture config.json")
    }

    /// Minimal safetensors reader: F32 tensors only, fixtures are trusted.
    static func readSafetensors(_ d: Data) throws -> [String: (shape: [Int], values: [Float])] {
        let n = d.withUnsafeBytes { Int(UInt64(littleEndian: $0.loadUnaligned(as: UInt64.self))) }
        let header = try JSONSerialization.jsonObject(with: d.subdata(in: 8..<(8 + n))) as! [String: Any]
        var out: [String: (shape: [Int], values: [Float])] = [:]
        for (name, v) in header where name != "__metadata__" {
            let e = v as! [String: Any]
            XCTAssertEqual(e["dtype"] as? String, "F32", name)
            let shape = (e["shape"] as! [NSNumber]).map { $0.intValue }
            let offs = (e["data_offsets"] as! [NSNumber]).map { $0.intValue }
            let bytes = d.subdata(in: (8 + n + offs[0])..<(8 + n + offs[1]))
            let values = bytes.withUnsafeBytes { raw in
                (0..<(bytes.count / 4)).map { Float(bitPattern: UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: $0 * 4, as: UInt32.self))) }
            }
            out[name] = (shape, values)
        }
        return out
    }
}

/// max |a - b| / max |b|
func relativeError(_ a: [Float], _ b: [Float], file: StaticString = #filePath, line: UInt = #line) -> Float {
    XCTAssertEqual(a.count, b.count, "length", file: file, line: line)
    var num: Float = 0, den: Float = 0
    for i in 0..<min(a.count, b.count) { num = max(num, abs(a[i] - b[i])); den = max(den, abs(b[i])) }
    return den > 0 ? num / den : num
}
