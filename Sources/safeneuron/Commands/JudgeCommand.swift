import ArgumentParser
import Evaluation
import Foundation
import Runtime

struct JudgeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "judge",
        abstract: "Judge existing responses (a generations.jsonl) with another judge.",
        discussion: """
        Reads {prompt, response, category?, tokens} lines and writes the same fields with the new verdict plus \
        judge, reason, score (rubric), mean_nll (fluency) and unparsed, one line per input line in input order. \
        Prints the verdict counts as JSON.
        """)

    @Option(help: "generations.jsonl to judge.") var input: String
    @Option(help: "Where to write judged.jsonl.") var output: String
    @OptionGroup var judging: JudgeOptions
    @Option(help: "Responses scored together by a judge model.") var batchSize = 16

    func validate() throws {
        if batchSize < 1 { throw ValidationError("--batch-size must be ≥ 1") }
        do { _ = try judging.spec() } catch { throw ValidationError(String(describing: error)) }
    }

    func run() throws {
        try runReporting {
            let loaded = try GenerationLog.load(URL(fileURLWithPath: input))
            if loaded.droppedTornLine { Progress.note("judge: dropped a torn last line of \(input)") }
            let judge = try judging.make(reusing: nil, batchSize: batchSize)
            let js = try judge.judge(loaded.records.map { ($0.prompt, $0.response) })
            let rows = zip(loaded.records, js).map { JudgedRecord(record: $0, judgement: $1, judge: judge.name) }
            try JudgedRecord.write(rows, to: URL(fileURLWithPath: output))
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
