import Foundation
import ModelFiles
import Tensors

/// A complete, loadable tiny Llama GGUF (2 layers, hidden 32, GPT-2 byte-level BPE with ChatML specials and a
/// chat template), built in code so every test and fuzz seed starts from a valid file.
public enum TinyModel {
    public static let hidden = 32, heads = 2, kvHeads = 1, headDim = 16, intermediate = 64, layers = 2

    public static let chatML = """
    {% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ '<|im_start|>system\\nYou are a helpful AI assistant.<|im_end|>\\n' }}{% endif %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}
    """

    /// GPT-2's byte → printable-character table.
    public static let byteSpellings: [String] = {
        var bs: [Int] = Array(33...126) + Array(161...172) + Array(174...255)
        var cs = bs
        var n = 0
        for b in 0..<256 where !bs.contains(b) { bs.append(b); cs.append(256 + n); n += 1 }
        var out = [String](repeating: "", count: 256)
        for (b, c) in zip(bs, cs) { out[b] = String(Character(Unicode.Scalar(UInt32(c))!)) }
        return out
    }()

    public static let merges = ["Ġ t", "h e", "Ġt he", "i n", "Ġ a"]
    public static let mergedTokens = ["Ġt", "he", "Ġthe", "in", "Ġa"]
    public static let specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    public static var tokens: [String] { byteSpellings + mergedTokens + specials }
    public static var vocab: Int { tokens.count }

    public static func metadata(template: String? = chatML) -> [(String, GGUFValue)] {
        let toks = tokens
        var m: [(String, GGUFValue)] = [
            ("general.architecture", .string("llama")),
            ("general.name", .string("tiny-reliab")),
            ("llama.context_length", .uint32(256)),
            ("llama.embedding_length", .uint32(UInt32(hidden))),
            ("llama.block_count", .uint32(UInt32(layers))),
            ("llama.feed_forward_length", .uint32(UInt32(intermediate))),
            ("llama.attention.head_count", .uint32(UInt32(heads))),
            ("llama.attention.head_count_kv", .uint32(UInt32(kvHeads))),
            ("llama.rope.freq_base", .float32(10000)),
            ("llama.attention.layer_norm_rms_epsilon", .float32(1e-5)),
            ("tokenizer.ggml.model", .string("gpt2")),
            ("tokenizer.ggml.pre", .string("smollm")),
            ("tokenizer.ggml.tokens", .array(.string, toks.map { .string($0) })),
            ("tokenizer.ggml.token_type", .array(.int32, toks.indices.map { .int32($0 >= toks.count - specials.count ? 3 : 1) })),
            ("tokenizer.ggml.merges", .array(.string, merges.map { .string($0) })),
            ("tokenizer.ggml.bos_token_id", .uint32(UInt32(toks.count - 3))),
            ("tokenizer.ggml.eos_token_id", .uint32(UInt32(toks.count - 1))),
            ("tokenizer.ggml.padding_token_id", .uint32(UInt32(toks.count - 3))),
        ]
        if let template { m.append(("tokenizer.chat_template", .string(template))) }
        return m
    }

    /// (GGUF name, row-major shape) of every tensor, tied embeddings.
    public static var tensorShapes: [(String, [Int])] {
        var t: [(String, [Int])] = [("token_embd.weight", [vocab, hidden]), ("output_norm.weight", [hidden])]
        for l in 0..<layers {
            t += [("blk.\(l).attn_norm.weight", [hidden]), ("blk.\(l).attn_q.weight", [heads * headDim, hidden]),
                  ("blk.\(l).attn_k.weight", [kvHeads * headDim, hidden]), ("blk.\(l).attn_v.weight", [kvHeads * headDim, hidden]),
                  ("blk.\(l).attn_output.weight", [hidden, heads * headDim]), ("blk.\(l).ffn_norm.weight", [hidden]),
                  ("blk.\(l).ffn_gate.weight", [intermediate, hidden]), ("blk.\(l).ffn_up.weight", [intermediate, hidden]),
                  ("blk.\(l).ffn_down.weight", [hidden, intermediate])]
        }
        return t
    }

    /// Adds the tensors: F32 norms and attention, F16 up, Q8_0 gate and Q4_0 down, so every decoder path runs.
    public static func addTensors(_ w: inout GGUFWriter, seed: UInt64 = 1, skip: Set<String> = [],
                           shapeOverride: [String: [Int]] = [:]) throws {
        var rng = SplitMix64(seed: seed)
        for (name, shape0) in tensorShapes where !skip.contains(name) {
            let shape = shapeOverride[name] ?? shape0
            let n = shape.reduce(1, *)
            if name.hasSuffix("ffn_gate.weight") && shape[shape.count - 1] % 32 == 0 {
                var raw = [UInt8]()
                for _ in 0..<(n / 32) {
                    raw += [0x1F, 0x21] // f16 0.0100
                    for _ in 0..<32 { raw.append(UInt8(truncatingIfNeeded: Int.random(in: -60..<60, using: &rng))) }
                }
                w.addTensor(name: name, dims: Array(shape.reversed()), type: .q8_0, rawData: raw)
            } else if name.hasSuffix("ffn_down.weight") && shape[shape.count - 1] % 32 == 0 {
                var raw = [UInt8]()
                for _ in 0..<(n / 32) {
                    raw += [0x1F, 0x21]
                    for _ in 0..<16 { raw.append(UInt8(truncatingIfNeeded: rng.next())) }
                }
                w.addTensor(name: name, dims: Array(shape.reversed()), type: .q4_0, rawData: raw)
            } else {
                let isNorm = name.contains("norm")
                let values = (0..<n).map { _ in isNorm ? Float(1) : Float(Double.random(in: -0.2..<0.2, using: &rng)) }
                try w.addTensor(name: name, shape: shape, values: values, type: name.hasSuffix("ffn_up.weight") ? .f16 : .f32)
            }
        }
    }

    public static func gguf(template: String? = chatML, metadata extra: [(String, GGUFValue)] = [], dropKeys: Set<String> = [],
                     skipTensors: Set<String> = [], shapeOverride: [String: [Int]] = [:]) throws -> [UInt8] {
        var w = GGUFWriter()
        var meta = metadata(template: template).filter { !dropKeys.contains($0.0) }
        for (k, v) in extra {
            if let i = meta.firstIndex(where: { $0.0 == k }) { meta[i].1 = v } else { meta.append((k, v)) }
        }
        for (k, v) in meta { w.add(k, v) }
        try addTensors(&w, skip: skipTensors, shapeOverride: shapeOverride)
        return w.serialize()
    }

    public static let neuronsJSON = """
    {"format":"safeneuron.neurons/1","model":"tiny-reliab","pool":"mean","tau_es":0.5,"tau_sas":0.5,"layers":2,\
    "intermediate_size":64,"harmful":4,"harmless":4,"sets":{"es":[[0,1],[1,5]],"sas":[[1,2]],"union":[[0,1],[1,2],[1,5]]},\
    "counts":{"es":2,"sas":1,"union":3}}
    """

    public static let promptsJSONL = """
    {"prompt": "How do I bake bread?", "category": "cooking", "id": "a1"}
    {"prompt": "Tell me a joke", "category": "fun"}
    {"prompt": "héllo \\u00e9 \\ud83d\\ude00", "category": "x"}

    """
    public static let promptsCSV = "id,prompt,category\n1,\"Say \"\"hi\"\"\",greet\n2,\"multi\nline\",misc\n3,plain,misc\n"
    public static let promptsTXT = "first prompt\nsecond prompt\n\nthird ✓\n"
}

/// The built `safeneuron` executable next to the test bundle (or in .build/), for tests that run it.
public enum SafeNeuronBinary {
    public static var url: URL? {
        var candidates: [URL] = []
        // The test bundle lives in .build/<config>/ next to the executable.
        for b in Bundle.allBundles where b.bundleURL.pathExtension == "xctest" {
            candidates.append(b.bundleURL.deletingLastPathComponent().appendingPathComponent("safeneuron"))
        }
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        candidates.append(root.appendingPathComponent(".build/release/safeneuron"))
        candidates.append(root.appendingPathComponent(".build/debug/safeneuron"))
        return candidates.first { FileManager.default.isExecutableFile(atPath: $0.path) }
    }
}
