import ArgumentParser
import Foundation
import Runtime

struct LogprobCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "logprob",
        abstract: "Score completions: the summed log-probability of each completion given its prompt.",
        discussion: """
        Input lines are {"prompt": P, "completion": C}. Following TRL's conversational convention, the prompt ids \
        are the chat template of [user: P] with the generation prompt, the full ids the template of \
        [user: P, assistant: C], and the completion tokens are the full ids after the prompt ids. Output lines \
        are {"logprob": sum, "tokens": count}, in input order — the quantity DPO trains on.
        """)

    @OptionGroup var model: ModelOptions
    @OptionGroup var pruning: PruneOptions
    @OptionGroup var direction: DirectionAblationOptions
    @Option(help: "JSONL of {\"prompt\", \"completion\"}.") var input: String
    @Option(help: "Where to write scores.jsonl.") var output: String
    @Option(help: "Sequences scored together.") var batchSize = 8

    func run() throws {
        try runReporting {
            let m = try model.load()
            let ablation = try pruning.neuronSet(for: m)
            try direction.apply(to: m)
            let rows = try JSONLines.readObjects(input)
            var pairs: [(ids: [Int], start: Int)] = []
            for (i, row) in rows.enumerated() {
                let p = try JSONLines.string(row, "prompt", path: input, line: i + 1)
                let c = try JSONLines.string(row, "completion", path: input, line: i + 1)
                pairs.append(try m.encodeCompletionPair(prompt: p, completion: c))
            }
            let progress = Progress("logprob", total: pairs.count)
            var out: [Any] = []
            for start in stride(from: 0, to: pairs.count, by: max(1, batchSize)) {
                let chunk = Array(pairs[start..<min(pairs.count, start + max(1, batchSize))])
                for s in try m.logprobs(chunk, ablation: ablation) { out.append(["logprob": s.logprob, "tokens": s.tokens]) }
                progress.advance(by: chunk.count, unit: "pairs")
            }
            try JSONLines.write(out, to: output)
            progress.finish("→ \(output)")
        }
    }
}
