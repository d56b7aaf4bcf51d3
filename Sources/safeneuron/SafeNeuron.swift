import ArgumentParser
import Tensors
#if canImport(Glibc)
import Glibc
#endif

@main
struct SafeNeuronMain {
    static func main() {
        // Must run before the first BLAS call: it may re-execute the process with better kernels.
        BLASEnvironment.ensurePreferredCore()
        // Our own slicing of large products (blocking waits) beat OpenBLAS's spinning threads by 8-12%
        // on forward, generation and evaluation; SAFENEURON_GEMM_SPLIT=0 restores OpenBLAS threading.
        BLAS.splitting = getenv("SAFENEURON_GEMM_SPLIT").map { String(cString: $0) } != "0"
        SafeNeuron.main()
    }
}

struct SafeNeuron: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "safeneuron",
        abstract: "Find, protect and attack the safety neurons of Llama-family LLMs, on a CPU.",
        discussion: """
        MODEL is a .gguf file or a Hugging Face model folder (config.json, model.safetensors or shards, \
        tokenizer.json, tokenizer_config.json). Without --model the default SmolLM2-135M-Instruct GGUF \
        fetched by scripts/setup.sh is used. Exit codes: 0 ok, 1 failure, 2 usage, 3 bad input file, \
        4 I/O error, 5 numerical fault.
        """,
        subcommands: [
            InspectCommand.self,
            TokenizeCommand.self,
            GenerateCommand.self,
            LogprobCommand.self,
            ConvertCommand.self,
            IdentifyCommand.self,
            DirectionCommand.self,
            PruneCommand.self,
            PairsCommand.self,
            RunCommand.self,
            BenchCommand.self,
            AlignCommand.self,
            EvalCommand.self,
            JudgeCommand.self,
            ReportCommand.self,
        ])
}
