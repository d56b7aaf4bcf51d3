import ArgumentParser
import Evaluation
import Foundation
import Runtime

struct JudgeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "judge",
        abstract: "Judge responses from any tool's JSON Lines with the refusal, Llama Guard or rubric judge.",
        discussion: """
        Each line of --input is a JSON object with a prompt and a response: the fields named by --prompt-field and \
        --response-field (default prompt, response), or a chat list (--messages-field, default messages) whose last \
        turn is the assistant's, the prompt then being the user turn before it. vLLM, TRL and our own \
        generations.jsonl all read this way. An optional string `category` groups the counts; `tokens` is the \
        response's token count, computed with --model's tokenizer when absent. Every line is written back to \
        --output in input order with all of its fields unchanged, plus verdict, judge, reason, score (rubric), \
        mean_nll (fluency), unparsed, and prompt, response and tokens when the line had none under those names. \
        Prints the verdict counts as JSON.
        """)

    @Option(help: "JSON Lines of responses to judge.") var input: String
    @Option(help: "Where to write the judged JSON Lines.") var output: String
    @Option(help: "Field holding the prompt.") var promptField = "prompt"
    @Option(help: "Field holding the response.") var responseField = "response"
    @Option(help: "Field holding a chat list ending with the assistant's turn (used when the response field is absent).")
    var messagesField = "messages"
    @Option(name: .long, help: "Model whose tokenizer counts response tokens on lines without `tokens` (default: the set-up's SmolLM2-135M-Instruct).")
    var model: String?
    @OptionGroup var judging: JudgeOptions
    @Option(help: "Responses scored together by a judge model.") var batchSize = 16

    func validate() throws {
        if batchSize < 1 { throw ValidationError("--batch-size must be ≥ 1") }
        do { _ = try judging.spec() } catch { throw ValidationError(String(describing: error)) }
    }

    func run() throws {
        try runReporting {
            let fields = ResponseFields(prompt: promptField, response: responseField, messages: messagesField)
            let loaded = try ResponseFile.load(URL(fileURLWithPath: input), fields: fields)
            if loaded.droppedTornLine { Progress.note("judge: dropped a torn last line of \(input)") }
            let records = loaded.records
            var counter: LanguageModel?
            if records.contains(where: { $0.tokens == nil }) { counter = try ModelOptions(model: model).load() }
            let judge = try judging.make(reusing: counter, batchSize: batchSize)
            let js = try judge.judge(records.map { ($0.prompt, $0.response) })
            var out = Data()
            for (r, j) in zip(records, js) {
                let tokens = r.tokens ?? counter.map { $0.tokenizer.encode(r.response, addSpecialTokens: false).count } ?? 0
                out.append(try ResponseFile.judgedLine(r, tokens: tokens, judgement: j, judge: judge.name))
            }
            try AtomicFile.write(out, to: output)
            Progress.note("judge: \(records.count) responses from \(input) → \(output)")
            var counts: [String: Any] = ["judge": judge.name, "total": js.count]
            for v in Verdict.allCases { counts[v.rawValue] = js.filter { $0.verdict == v }.count }
            for (k, v) in SafetyEvaluator.judgeStatistics(js) {
                switch v {
                case .int(let i): counts[k] = i
                case .double(let d): counts[k] = d
                case .bool(let b): counts[k] = b
                case .string(let s): counts[k] = s
                }
            }
            try printJSON(counts)
        }
    }
}
