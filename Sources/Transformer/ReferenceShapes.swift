import Foundation
import Tensors

/// The published configurations of the checkpoints the paper and the project use, for measuring memory and speed
/// at their real sizes without their weights (none can be fetched here): `bench --shape NAME` builds the model
/// from this `config.json` through its architecture description, with seeded random weights.
public enum ReferenceShapes {
    /// name → the Hugging Face `config.json` fields that set the shape (values from each model's own config).
    public static let configs: [(name: String, json: String)] = [
        ("smollm2-135m", """
        {"model_type": "llama", "architectures": ["LlamaForCausalLM"], "hidden_size": 576, "intermediate_size": 1536,
         "num_hidden_layers": 30, "num_attention_heads": 9, "num_key_value_heads": 3, "vocab_size": 49152,
         "max_position_embeddings": 8192, "rms_norm_eps": 1e-5, "rope_theta": 100000, "tie_word_embeddings": true,
         "hidden_act": "silu", "bos_token_id": 1, "eos_token_id": 2}
        """),
        ("qwen2.5-0.5b", """
        {"model_type": "qwen2", "architectures": ["Qwen2ForCausalLM"], "hidden_size": 896, "intermediate_size": 4864,
         "num_hidden_layers": 24, "num_attention_heads": 14, "num_key_value_heads": 2, "vocab_size": 151936,
         "max_position_embeddings": 32768, "rms_norm_eps": 1e-6, "rope_theta": 1000000.0, "tie_word_embeddings": true,
         "hidden_act": "silu", "use_sliding_window": false, "sliding_window": 32768, "max_window_layers": 21,
         "bos_token_id": 151643, "eos_token_id": 151645}
        """),
        ("qwen2.5-1.5b", """
        {"model_type": "qwen2", "architectures": ["Qwen2ForCausalLM"], "hidden_size": 1536, "intermediate_size": 8960,
         "num_hidden_layers": 28, "num_attention_heads": 12, "num_key_value_heads": 2, "vocab_size": 151936,
         "max_position_embeddings": 32768, "rms_norm_eps": 1e-6, "rope_theta": 1000000.0, "tie_word_embeddings": true,
         "hidden_act": "silu", "use_sliding_window": false, "sliding_window": 32768, "max_window_layers": 21,
         "bos_token_id": 151643, "eos_token_id": 151645}
        """),
        ("llama-3.2-1b", """
        {"model_type": "llama", "architectures": ["LlamaForCausalLM"], "hidden_size": 2048, "intermediate_size": 8192,
         "num_hidden_layers": 16, "num_attention_heads": 32, "num_key_value_heads": 8, "head_dim": 64,
         "vocab_size": 128256, "max_position_embeddings": 131072, "rms_norm_eps": 1e-5, "rope_theta": 500000.0,
         "rope_scaling": {"factor": 32.0, "high_freq_factor": 4.0, "low_freq_factor": 1.0,
                          "original_max_position_embeddings": 8192, "rope_type": "llama3"},
         "tie_word_embeddings": true, "hidden_act": "silu", "bos_token_id": 128000, "eos_token_id": 128001}
        """),
    ]

    public static var names: [String] { configs.map(\.name) }

    public static func config(_ name: String) throws -> ModelConfig {
        guard let entry = configs.first(where: { $0.name == name }) else {
            throw TransformerError.unsupported(source: "--shape", reason: "'\(name)' (known: \(names.joined(separator: ", ")))")
        }
        return try Architectures.config(fromHF: Data(entry.json.utf8), source: "shape \(name)")
    }

    /// Weights of `c` with every matrix uniform in ±0.02·√3 (standard deviation 0.02, transformers'
    /// `initializer_range`) and every norm weight at its identity (1, or 0 for (1 + w) norms), from `seed`.
    /// Each tensor has its own stream, filled in parallel chunks whose draws depend only on (seed, tensor, chunk).
    public static func randomWeights(_ c: ModelConfig, seed: UInt64) -> ModelWeights {
        let w = ModelWeights(config: c)
        let identity: Float = c.recipe.normWeightOffset != 0 ? 0 : 1
        let scale = Float(0.02 * 3.0.squareRoot())
        for (index, (name, t)) in w.namedParameters.enumerated() {
            let p = t.pointer
            if t.shape.count == 1 && name.contains("norm") {
                p.update(repeating: identity, count: t.count)
                continue
            }
            let chunk = 1 << 16
            let chunks = (t.count + chunk - 1) / chunk
            Parallel.forRanges(chunks, minChunk: 1) { range in
                for k in range {
                    var g = SplitMix64(seed: seed, stream: UInt64(index) << 32 | UInt64(k))
                    for i in (k * chunk)..<min(t.count, (k + 1) * chunk) {
                        p[i] = scale * (2 * Float(g.next() >> 40) * 0x1p-24 - 1)
                    }
                }
            }
        }
        return w
    }
}
