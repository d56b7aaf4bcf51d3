import ArgumentParser
import Foundation
import Runtime
import SafetyNeurons

struct PruneCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "prune",
        abstract: "Write the neuron-pruning attack's model: a Hugging Face folder with the chosen neurons' down_proj columns zeroed.",
        discussion: "Equivalent to running with --prune (activations zeroed); loadable by transformers.")

    @OptionGroup var model: ModelOptions
    @Option(help: "neurons.json from `identify`.") var neurons: String
    @Option(help: "Which set to prune: union, es, sas or topk.") var neuronSet: String = "union"
    @Option(help: "The folder to write.") var output: String
    @Option(help: "Weight dtype: f32 or bf16.") var dtype = "f32"

    func run() throws {
        try runReporting {
            guard let d = ExportDType(rawValue: dtype) else { throw RuntimeError.invalidArgument("--dtype must be f32 or bf16") }
            let m = try model.load()
            let set = try loadNeuronSet(neurons, set: neuronSet, config: m.config)
            let zeroed = try zeroDownProjColumns(m.weights, set: set)
            try m.exportHF(to: output, dtype: d)
            Progress.note("prune: zeroed \(zeroed) down_proj columns → \(output)")
        }
    }
}
