import ArgumentParser
import Foundation
import Runtime
import Transformer

struct GenerateCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "generate",
        abstract: "Generate completions, for one prompt or a JSONL file of prompts.",
        discussion: """
        The prompt is wrapped in the model's chat template as one user message (plus --system) unless --raw. \
        Greedy decoding by default; stops at EOS or the template's end-of-turn token. With --input, each line \
        {"prompt": ...} is answered and --output gets {"prompt", "response", "tokens"} per line in input order; \
        prompts are decoded together in batches with a KV cache.
        """)

    @OptionGroup var model: ModelOptions
    @OptionGroup var pruning: PruneOptions
    @OptionGroup var direction: DirectionAblationOptions
    @Option(help: "One prompt.") var prompt: String?
    @Option(help: "A system message.") var system: String?
    @Option(help: "JSONL file of {\"prompt\": ...} lines.") var input: String?
    @Option(help: "Where to write generations.jsonl (with --input).") var output: String?
    @Option(help: "Most new tokens per prompt.") var maxTokens = 256
    @Option(help: "Sampling temperature; 0 is greedy.") var temperature: Double = 0
    @Option(help: "Nucleus sampling threshold.") var topP: Double = 1
    @Option(help: "Random seed for sampling.") var seed: UInt64 = 0
    @Option(help: "Prompts decoded together.") var batchSize = 16
    @Flag(help: "Use the prompt as-is, without the chat template.") var raw = false

    func validate() throws {
        if (prompt == nil) == (input == nil) { throw ValidationError("give exactly one of --prompt or --input") }
        if input != nil && output == nil { throw ValidationError("--input needs --output") }
        if maxTokens < 0 { throw ValidationError("--max-tokens must be ≥ 0") }
        if temperature < 0 { throw ValidationError("--temperature must be ≥ 0") }
        if !(topP > 0 && topP <= 1) { throw ValidationError("--top-p must be in (0, 1]") }
        if batchSize < 1 { throw ValidationError("--batch-size must be ≥ 1") }
    }

    func run() throws {
        try runReporting {
            let m = try model.load()
            let ablation = try pruning.neuronSet(for: m)
            try direction.apply(to: m)
            let sampling: Sampling = temperature == 0 ? .greedy : .sample(temperature: Float(temperature), topP: Float(topP), seed: seed)
            func encode(_ p: String) throws -> [Int] {
                raw ? m.tokenizer.encode(p, addSpecialTokens: true) : try m.encodeChat(user: p, system: system)
            }
            if let prompt {
                let ids = try encode(prompt)
                let out = try m.generate(prompts: [ids], maxNewTokens: maxTokens, sampling: sampling, ablation: ablation)
                print(m.decodeCompletion(out[0]))
                return
            }
            guard let input, let output else { return }
            let rows = try JSONLines.readObjects(input)
            let prompts = try rows.enumerated().map { try JSONLines.string($0.element, "prompt", path: input, line: $0.offset + 1) }
            let encoded = try prompts.map(encode)
            let progress = Progress("generate", total: prompts.count)
            var records: [Any] = []
            var produced = 0
            for start in stride(from: 0, to: encoded.count, by: batchSize) {
                let chunk = Array(encoded[start..<min(encoded.count, start + batchSize)])
                let outs = try m.generate(prompts: chunk, maxNewTokens: maxTokens, sampling: sampling, ablation: ablation)
                for (i, ids) in outs.enumerated() {
                    records.append(["prompt": prompts[start + i], "response": m.decodeCompletion(ids), "tokens": ids.count])
                    produced += ids.count
                }
                progress.advance(by: chunk.count, unit: "prompts",
                                 fields: [("tokens/s", String(format: "%.1f", Double(produced) / max(progress.elapsed, 1e-9)))])
            }
            try JSONLines.write(records, to: output)
            progress.finish("\(produced) tokens → \(output)")
        }
    }
}
