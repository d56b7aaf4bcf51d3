import ArgumentParser
import Foundation
import Runtime
import SafetyNeurons
import Transformer

struct PruneCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "prune",
        abstract: "Write the neuron-pruning attack's model: a Hugging Face folder with the chosen neurons' down_proj columns zeroed.",
        discussion: """
        Equivalent to running with --prune (activations zeroed); loadable by transformers. --direction instead (or         as well) writes the refusal-direction attack's weights, equivalent to --ablate-direction: the direction is         projected out of every matrix that writes the residual stream (the embedding rows, every o_proj and         down_proj). A model with tied embeddings comes out untied (lm_head.weight = the original embedding,         tie_word_embeddings false), since the LM head must keep reading the original embedding.
        """)

    @OptionGroup var model: ModelOptions
    @Option(help: "neurons.json from `identify`.") var neurons: String?
    @Option(help: "direction.safetensors from `direction`: orthogonalise the weights against its direction.") var direction: String?
    @Option(help: "Which set to prune.") var neuronSet: NeuronSetChoice = .union
    @Option(help: "The folder to write.") var output: String
    @Option(help: "Weight dtype: f32 or bf16.") var dtype = "f32"

    func validate() throws {
        if neurons == nil && direction == nil { throw ValidationError("give --neurons, --direction or both") }
    }

    func run() throws {
        try runReporting {
            guard let d = ExportDType(rawValue: dtype) else { throw RuntimeError.invalidArgument("--dtype must be f32 or bf16") }
            let m = try model.load()
            var weights = m.weights
            if let neurons {
                let set = try loadNeuronSet(neurons, set: neuronSet.rawValue, config: m.config)
                let zeroed = try zeroDownProjColumns(m.weights, set: set)
                Progress.note("prune: zeroed \(zeroed) down_proj columns")
            }
            if let direction {
                let file = try RefusalDirectionFile.read(path: direction)
                weights = try DirectionAblation.orthogonalize(m.weights, direction: file.direction)
                Progress.note("prune: orthogonalised the embedding, \(m.config.numHiddenLayers) o_proj and \(m.config.numHiddenLayers) down_proj against the direction of \(direction)"
                              + (m.config.tieWordEmbeddings ? "; embeddings untied (lm_head = the original embedding)" : ""))
            }
            try m.exportHF(to: output, dtype: d, weights: weights)
            Progress.note("prune: → \(output)")
        }
    }
}
