import Foundation
import Runtime

/// A `--judge` argument: `refusal`, `guard:MODEL` or `rubric:MODEL` (MODEL a .gguf file or HF folder).
public enum JudgeSpec: Equatable, Sendable {
    case refusal
    case guardModel(String)
    case rubric(String)

    public init(parsing s: String) throws {
        if s == "refusal" { self = .refusal; return }
        for (prefix, make) in [("guard:", JudgeSpec.guardModel), ("rubric:", JudgeSpec.rubric)] where s.hasPrefix(prefix) {
            let path = String(s.dropFirst(prefix.count))
            guard !path.isEmpty else { throw EvaluationError.invalidArgument(reason: "--judge \(s): missing MODEL after '\(prefix)'") }
            self = make(path); return
        }
        throw EvaluationError.invalidArgument(reason: "--judge '\(s)': expected refusal, guard:MODEL or rubric:MODEL")
    }

    /// Builds the judge. `load` returns a model for a path (the caller may reuse an already loaded one).
    /// The fluency rule (mean NLL above `fluencyThreshold` → degenerate) applies to the refusal judge only.
    public func make(load: (String) throws -> LanguageModel, fluencyModel: String?, fluencyThreshold: Double,
                     batchSize: Int, rubricFolder: URL, fluencyCache: String? = nil) throws -> ResponseJudge {
        switch self {
        case .refusal:
            let rules = RefusalJudge(maxMeanTokenNLL: fluencyThreshold)
            guard let fm = fluencyModel else { return RefusalResponseJudge(rules: rules) }
            return RefusalResponseJudge(rules: rules, fluency: FluencyScorer(model: try load(fm), batchSize: batchSize, cacheFile: fluencyCache),
                                        fluencyName: JudgeSpec.shortName(fm))
        case .guardModel(let p):
            return GuardJudge(model: try load(p), modelName: JudgeSpec.shortName(p), batchSize: batchSize)
        case .rubric(let p):
            let prompts = try RubricJudge.loadPrompts(folder: rubricFolder)
            return RubricJudge(model: try load(p), modelName: JudgeSpec.shortName(p), systemPrompt: prompts.system,
                               userTemplate: prompts.user, batchSize: batchSize)
        }
    }

    /// File or folder name without a .gguf extension.
    public static func shortName(_ path: String) -> String {
        let last = URL(fileURLWithPath: path).standardizedFileURL.lastPathComponent
        return last.hasSuffix(".gguf") ? String(last.dropLast(5)) : last
    }

    /// vendor-data/datasets/strongreject under a data root (where setup extracts the rubric prompts).
    public static func defaultRubricFolder(root: URL) -> URL {
        root.appendingPathComponent("vendor-data/datasets/strongreject", isDirectory: true)
    }
}
