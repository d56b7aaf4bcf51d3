import ArgumentParser
import Foundation
import Runtime

struct ConvertCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "convert",
        abstract: "Write a model as a Hugging Face folder (transformers) or a GGUF file (llama.cpp, Ollama, LM Studio).",
        discussion: """
        --format hf (default): a folder with config.json, model.safetensors (HF names and layout; llama.cpp's Q/K \
        row order undone; tied embeddings stay tied), tokenizer.json, tokenizer_config.json and chat_template.jinja. \
        --format gguf: one GGUF v3 file with llama.cpp's tensor names and Q/K row order, the hyper-parameters, the \
        tokenizer (byte-level BPE), special tokens and the chat template; tied embeddings stay tied. --type f32, \
        f16, bf16 or q8_0 sets the matrices' storage (norms stay f32; a q8_0 matrix whose rows are not whole blocks \
        of 32 is stored f16), encoded exactly as the gguf Python package does. Any model safeneuron loads can be \
        converted, including align and prune outputs.
        """)

    enum Format: String, ExpressibleByArgument, CaseIterable { case hf, gguf }

    @OptionGroup var model: ModelOptions
    @Option(help: "The folder (hf) or file (gguf) to write, atomically.") var output: String
    @Option(help: "hf (a Hugging Face folder) or gguf (one llama.cpp file).") var format: Format = .hf
    @Option(help: "Hugging Face weight dtype: f32 or bf16.") var dtype = "f32"
    @Option(help: "GGUF matrix storage: f32, f16, bf16 or q8_0.") var type = "f32"

    func validate() throws {
        if ExportDType(rawValue: dtype) == nil { throw ValidationError("--dtype must be f32 or bf16") }
        if GGUFExportType(rawValue: type) == nil { throw ValidationError("--type must be f32, f16, bf16 or q8_0") }
    }

    func run() throws {
        try runReporting {
            let m = try model.load()
            switch format {
            case .hf: try m.exportHF(to: output, dtype: ExportDType(rawValue: dtype)!)
            case .gguf: try m.exportGGUF(to: output, type: GGUFExportType(rawValue: type)!)
            }
            Progress.note("wrote \(output)")
        }
    }
}
