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
        let model: LlamaModel
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
        let weights = LlamaWeights(config: config)
        for (n, t) in weights.namedParameters {
            guard let src = tensors[n] else { throw TransformerError.missingTensor(source: name, name: n) }
            XCTAssertEqual(src.shape, t.shape, n)
            XCTAssertEqual(src.values.count, t.count, n)
            src.values.withUnsafeBufferPointer { t.pointer.update(from: $0.baseAddress!, count: t.count) }
        }
        let manifest = try JSONDecoder().decode(Manifest.self, from: Data(contentsOf: folder.appendingPathComponent("manifest.json")))
        return Loaded(model: try LlamaModel(weights: weights), manifest: manifest, folder: folder)
    }

    static func floats(_ url: URL) throws -> [Float] {
        let d = try Data(contentsOf: url)
        return d.withUnsafeBytes { raw in
            (0..<(d.count / 4)).map { Float(bitPattern: UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: $0 * 4, as: UInt32.self))) }
        }
    }

    static func mapConfig(_ data: Data) throws -> LlamaConfig {
        let j = try JSONSerialization.jsonObject(with: data) as! [String: Any]
        func int(_ k: String) -> Int { (j[k] as! NSNumber).intValue }
        let rope = j["rope_parameters"] as? [String: Any] ?? j["rope_scaling"] as? [String: Any]
        let theta = (rope?["rope_theta"] as? NSNumber)?.doubleValue ?? (j["rope_theta"] as? NSNumber)?.doubleValue ?? 10000
        var scaling: LlamaConfig.RopeScaling?
        if let r = rope, let type = r["rope_type"] as? String, type != "default" {
            scaling = .init(ropeType: type, factor: (r["factor"] as! NSNumber).doubleValue,
                            lowFreqFactor: (r["low_freq_factor"] as! NSNumber).doubleValue,
                            highFreqFactor: (r["high_freq_factor"] as! NSNumber).doubleValue,
                            originalMaxPositionEmbeddings: (r["original_max_position_embeddings"] as! NSNumber).intValue)
        }
        let type = j["model_type"] as! String
        return LlamaConfig(modelType: type, vocabSize: int("vocab_size"), hiddenSize: int("hidden_size"),
                           intermediateSize: int("intermediate_size"), numHiddenLayers: int("num_hidden_layers"),
                           numAttentionHeads: int("num_attention_heads"), numKeyValueHeads: int("num_key_value_heads"),
                           headDim: (j["head_dim"] as? NSNumber)?.intValue,
                           rmsNormEps: (j["rms_norm_eps"] as! NSNumber).doubleValue, ropeTheta: theta,
                           ropeScaling: scaling, maxPositionEmbeddings: int("max_position_embeddings"),
                           tieWordEmbeddings: (j["tie_word_embeddings"] as? Bool) ?? false,
                           attentionBias: type == "qwen2" || ((j["attention_bias"] as? Bool) ?? false))
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
