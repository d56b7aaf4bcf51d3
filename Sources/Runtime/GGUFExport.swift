import Foundation
import ModelFiles
import Tokenization
import Tensors
import Transformer

/// Storage types of `convert --format gguf --type`.
public enum GGUFExportType: String, CaseIterable, Sendable {
    case f32, f16, bf16, q8_0

    /// llama.cpp's `general.file_type` (LLAMA_FTYPE_ALL_F32, MOSTLY_F16, MOSTLY_Q8_0, MOSTLY_BF16).
    var fileType: UInt32 {
        switch self {
        case .f32: return 0
        case .f16: return 1
        case .q8_0: return 7
        case .bf16: return 32
        }
    }

    /// The type of one tensor, as llama.cpp's converter chooses it: vectors (norms, biases) stay f32; matrices
    /// take the requested type, q8_0 falling back to f16 when a row is not whole blocks of 32.
    func storage(dims: [Int]) -> GGMLType {
        guard dims.count >= 2 else { return .f32 }
        switch self {
        case .f32: return .f32
        case .f16: return .f16
        case .bf16: return .bf16
        case .q8_0: return GGUFEncoding.canEncode(.q8_0, rowLength: dims[0]) ? .q8_0 : .f16
        }
    }
}

extension LanguageModel {
    /// Writes a GGUF v3 file that llama.cpp (and Ollama, LM Studio, transformers' GGUF loader) reads: llama.cpp's
    /// tensor names, its Q/K row order re-applied for `llama`-architecture models, tied embeddings kept tied (no
    /// `output.weight`), the architecture's hyper-parameters, the tokenizer (copied verbatim from a GGUF source,
    /// else rebuilt from tokenizer.json), special tokens and the chat template.
    public func exportGGUF(to path: String, type: GGUFExportType, weights override: ModelWeights? = nil) throws {
        let w = override ?? weights
        let c = w.config
        guard c.ropeScaling == nil || c.ropeScaling?.ropeType == "linear" else {
            throw RuntimeError.unsupported(path: self.path, reason: "GGUF export of scaled RoPE (\(c.ropeScaling!.ropeType)): llama.cpp needs a rope_freqs tensor this exporter does not write yet; export the Hugging Face folder instead")
        }
        for (name, t) in w.namedParameters {
            if let i = NumericalError.firstNonFinite(UnsafeBufferPointer(t.buffer)) {
                throw NumericalError.nonFiniteWeight(path: path, tensor: name, index: i, value: t.buffer[i])
            }
        }
        let description = c.architecture
        let (arch, keys) = description.ggufMetadata(c)
        var meta: [(String, GGUFValue)] = [
            ("general.architecture", .string(arch)),
            ("general.name", .string(displayName)),
            ("general.file_type", .uint32(type.fileType)),
        ]
        for (key, value) in keys {
            switch value {
            case .uint32(let v): meta.append((key, .uint32(v)))
            case .float32(let v): meta.append((key, .float32(v)))
            case .string(let v): meta.append((key, .string(v)))
            case .bool(let v): meta.append((key, .bool(v)))
            }
        }
        meta += try ggufTokenizerMetadata(vocabularySize: c.vocabSize)

        // Tensors in llama.cpp's names and order; the data is produced one tensor at a time.
        var plans: [GGUFStreamWriter.TensorPlan] = []
        var sources: [(tensor: Tensor, permuteHeads: Int?)] = []
        let names = description.tensorNames
        for (name, t) in w.namedParameters {
            guard let gguf = names.ggufName(forHF: name) else {
                throw RuntimeError.unsupported(path: self.path, reason: "GGUF export of tensor \(name)")
            }
            let dims = Array(t.shape.reversed())
            plans.append(GGUFStreamWriter.TensorPlan(name: gguf, dims: dims, type: type.storage(dims: dims)))
            var heads: Int?
            if description.ggufPermutesQK {
                switch names.role(ofHF: name) {
                case .qProj?, .qBias?: heads = c.numAttentionHeads
                case .kProj?, .kBias?: heads = c.numKeyValueHeads
                default: break
                }
            }
            sources.append((t, heads))
        }
        let shift = description.ggufNormShift
        let writer = GGUFStreamWriter(metadata: meta, tensors: plans)
        try writer.write(path: path) { i in
            let (t, heads) = sources[i]
            let shifted = shift != 0 && plans[i].name.hasSuffix("norm.weight")
            guard heads != nil || shifted else { return try GGUFEncoding.encode(UnsafeBufferPointer(t.buffer), as: plans[i].type) }
            // On a copy: the model's own weights stay in HF order and form.
            let copy = UnsafeMutablePointer<Float>.allocate(capacity: t.count)
            defer { copy.deallocate() }
            copy.update(from: t.pointer, count: t.count)
            if let heads {
                // llama.cpp's adjacent-pair RoPE order.
                let rows = t.shape[0]
                GGUFLayout.permuteRows(copy, rows: rows, columns: t.count / rows, heads: heads)
            }
            if shifted { for j in 0..<t.count { copy[j] += shift } }   // llama.cpp computes w·x̂: store w + 1
            return try GGUFEncoding.encode(UnsafeBufferPointer(start: copy, count: t.count), as: plans[i].type)
        }
    }

    /// `tokenizer.*` keys. A GGUF source's own keys are copied as they were (the exact round trip); a Hugging Face
    /// source's tokenizer is described anew.
    func ggufTokenizerMetadata(vocabularySize: Int) throws -> [(String, GGUFValue)] {
        if format == .gguf {
            let file = try GGUFFile(path: path)
            let keys = file.metadataKeys.filter { $0.hasPrefix("tokenizer.") }
            if !keys.isEmpty { return keys.compactMap { k in file.metadata[k].map { (k, $0) } } }
        }
        let v: GGUFVocabulary
        do { v = try tokenizer.ggufVocabulary(size: vocabularySize) } catch let e as TokenizerError {
            throw RuntimeError.unsupported(path: path, reason: e.description)
        }
        var meta: [(String, GGUFValue)] = [
            ("tokenizer.ggml.model", .string(v.model)),
            ("tokenizer.ggml.pre", .string(v.pre)),
            ("tokenizer.ggml.tokens", .array(.string, v.tokens.map { .string($0) })),
            ("tokenizer.ggml.token_type", .array(.int32, v.tokenTypes.map { .int32($0) })),
            ("tokenizer.ggml.merges", .array(.string, v.merges.map { .string($0) })),
        ]
        let bos = config.bosTokenId ?? tokenizer.bosTokenId
        let eos = config.eosTokenIds.first ?? tokenizer.eosTokenId
        if let bos { meta.append(("tokenizer.ggml.bos_token_id", .uint32(UInt32(bos)))) }
        if let eos { meta.append(("tokenizer.ggml.eos_token_id", .uint32(UInt32(eos)))) }
        if let unk = tokenizer.unkTokenId { meta.append(("tokenizer.ggml.unknown_token_id", .uint32(UInt32(unk)))) }
        if let pad = tokenizer.padTokenId { meta.append(("tokenizer.ggml.padding_token_id", .uint32(UInt32(pad)))) }
        meta.append(("tokenizer.ggml.add_bos_token", .bool(tokenizer.addBOS)))
        meta.append(("tokenizer.ggml.add_eos_token", .bool(tokenizer.addEOS)))
        if chatTemplate != nil { meta.append(("tokenizer.chat_template", .string(chatTemplateText))) }
        return meta
    }
}
