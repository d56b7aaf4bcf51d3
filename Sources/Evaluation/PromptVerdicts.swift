import Foundation

/// The per-prompt verdicts of one safety evaluation folder (an attack cell): which prompts the model complied
/// with. Read from the cell's generations.jsonl, which `SafetyEvaluator` rewrites in input order with the final
/// verdicts, so a record's line index is its prompt index in the dataset (after `--limit`).
public struct PromptVerdicts: Equatable, Sendable {
    /// Prompt texts by index.
    public var prompts: [String]
    /// `complied[i]`: the verdict of prompt i was `complied` (refused and degenerate responses are not).
    public var complied: [Bool]

    public init(prompts: [String], complied: [Bool]) {
        precondition(prompts.count == complied.count)
        self.prompts = prompts; self.complied = complied
    }

    public var count: Int { complied.count }
    public var compliedCount: Int { complied.filter { $0 }.count }

    /// Complied flags keyed by prompt index.
    public var compliedByIndex: [Int: Bool] { Dictionary(uniqueKeysWithValues: complied.enumerated().map { ($0.offset, $0.element) }) }

    /// Loads `folder/generations.jsonl`. Every record must carry a verdict (a judged, finished cell); a missing
    /// or empty file is an error.
    public static func load(folder: URL) throws -> PromptVerdicts {
        let url = folder.appendingPathComponent(SafetyEvaluator.generationsFile)
        guard FileManager.default.fileExists(atPath: url.path) else {
            throw EvaluationError.io(path: url.path, reason: "no generations (is the cell evaluated?)")
        }
        let loaded = try GenerationLog.load(url)
        guard !loaded.records.isEmpty else { throw EvaluationError.malformed(path: url.path, line: 1, reason: "no generation records") }
        if loaded.droppedTornLine {
            throw EvaluationError.malformed(path: url.path, line: loaded.records.count + 1, reason: "torn last record (the cell is unfinished)")
        }
        var complied: [Bool] = []
        complied.reserveCapacity(loaded.records.count)
        for (i, r) in loaded.records.enumerated() {
            guard let v = r.verdict else {
                throw EvaluationError.malformed(path: url.path, line: i + 1, reason: "record has no verdict (judge the cell first)")
            }
            complied.append(v == .complied)
        }
        return PromptVerdicts(prompts: loaded.records.map(\.prompt), complied: complied)
    }

    /// The two cells' complied flags matched by prompt index, for `Statistics.pairedComparison`. Both must
    /// hold the same prompts in the same order (same dataset and limit); `labels` name them in the error.
    public static func matched(_ a: PromptVerdicts, _ b: PromptVerdicts, labels: (String, String) = ("A", "B")) throws -> ([Bool], [Bool]) {
        guard a.count == b.count else {
            throw EvaluationError.invalidArgument(reason: "\(labels.0) has \(a.count) prompts, \(labels.1) has \(b.count): not the same prompts")
        }
        if let i = a.prompts.indices.first(where: { a.prompts[$0] != b.prompts[$0] }) {
            throw EvaluationError.invalidArgument(reason: "prompt \(i + 1) differs between \(labels.0) and \(labels.1): not the same prompts in the same order")
        }
        return (a.complied, b.complied)
    }
}
