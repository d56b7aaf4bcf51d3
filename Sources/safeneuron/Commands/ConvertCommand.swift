import ArgumentParser
import Foundation
import Runtime

struct ConvertCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "convert",
        abstract: "Write a Hugging Face model folder that transformers and every safeneuron command load.",
        discussion: """
        The folder holds config.json, model.safetensors (HF names and layout; llama.cpp's Q/K row order \
        undone; tied embeddings stay tied), tokenizer.json, tokenizer_config.json and chat_template.jinja.
        """)

    @OptionGroup var model: ModelOptions
    @Option(help: "The folder to write (replaced atomically).") var output: String
    @Option(help: "Weight dtype: f32 or bf16.") var dtype = "f32"

    func run() throws {
        try runReporting {
            guard let d = ExportDType(rawValue: dtype) else { throw RuntimeError.invalidArgument("--dtype must be f32 or bf16") }
            let m = try model.load()
            try m.exportHF(to: output, dtype: d)
            Progress.note("wrote \(output)")
        }
    }
}
