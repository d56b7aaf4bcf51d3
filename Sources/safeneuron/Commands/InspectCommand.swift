import ArgumentParser
import Foundation
import Runtime
import Tensors

struct InspectCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "inspect",
        abstract: "Print a model's architecture, sizes, tensor types, special tokens and chat template.")

    @OptionGroup var model: ModelOptions
    @Flag(help: "Print JSON instead of text.") var json = false

    func run() throws {
        try runReporting {
            let m = try model.load()
            let c = m.config
            var info: [String: Any] = [
                "path": m.path, "format": m.format, "name": m.displayName, "model_type": c.modelType,
                "layers": c.numHiddenLayers, "hidden_size": c.hiddenSize, "intermediate_size": c.intermediateSize,
                "attention_heads": c.numAttentionHeads, "kv_heads": c.numKeyValueHeads, "head_dim": c.headDim,
                "vocab_size": c.vocabSize, "max_position_embeddings": c.maxPositionEmbeddings,
                "rope_theta": c.ropeTheta, "rms_norm_eps": c.rmsNormEps, "tied_embeddings": c.tieWordEmbeddings,
                "attention_bias": c.attentionBias, "parameters": m.engine.weights.parameterCount,
                "tensor_types": m.tensorTypeCounts, "special_tokens": m.specialTokenSummary,
                "stop_token_ids": m.stopTokenIds.sorted(), "chat_template_source": m.chatTemplateSource,
                "chat_template": m.chatTemplateText, "openblas_core": BLAS.coreName,
                "mlp_neurons": c.numHiddenLayers * c.intermediateSize,
            ]
            if let s = c.ropeScaling { info["rope_scaling"] = ["type": s.ropeType, "factor": s.factor] }
            if json { try printJSON(info); return }
            print("""
            model         \(m.displayName)
            file          \(m.path) (\(m.format))
            architecture  \(c.modelType): \(c.numHiddenLayers) layers, hidden \(c.hiddenSize), MLP \(c.intermediateSize), \
            heads \(c.numAttentionHeads) (kv \(c.numKeyValueHeads), dim \(c.headDim)), vocab \(c.vocabSize)
            parameters    \(m.engine.weights.parameterCount) (\(c.tieWordEmbeddings ? "tied" : "untied") embeddings\
            \(c.attentionBias ? ", q/k/v biases" : ""))
            rope          theta \(c.ropeTheta)\(c.ropeScaling.map { ", \($0.ropeType) scaling ×\($0.factor)" } ?? ""), \
            rms eps \(c.rmsNormEps), context \(c.maxPositionEmbeddings)
            MLP neurons   \(c.numHiddenLayers * c.intermediateSize)
            tensor types  \(m.tensorTypeCounts.sorted { $0.key < $1.key }.map { "\($0.key)×\($0.value)" }.joined(separator: " "))
            special       \(m.specialTokenSummary.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " "))
            stop tokens   \(m.stopTokenIds.sorted())
            OpenBLAS core \(BLAS.coreName)
            chat template (\(m.chatTemplateSource))
            \(m.chatTemplateText)
            """)
        }
    }
}
