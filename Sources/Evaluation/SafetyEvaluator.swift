import Foundation
import Runtime
import Transformer

/// Runs one prompt set through a model (optionally under neuron ablation), judges the responses and writes
/// `generations.jsonl`, `judgements.jsonl`, `timing.json` and `summary.json` into one folder.
///
/// Re-running on the same folder resumes: finished generations are kept (see `GenerationPlan`), every
/// response is judged again, and summary.json comes out identical except `wall_seconds` and `created_at`
/// (the only time-dependent fields; timing.json holds the speed of the latest pass).
public struct SafetyEvaluator {
    public struct Config {
        /// Report row label ("Base", "DPO", …).
        public var method: String
        public var role: String
        /// Dataset name recorded in the summary (built-in name or file name).
        public var dataset: String
        public var generation: GenerationSettings
        public var pruneSet: PruneSetInfo?
        public var modelSHA256: String?
        public var extraSettings: [String: SettingValue]

        public init(method: String, role: String = SafetySummary.roleAttack, dataset: String,
                    generation: GenerationSettings = GenerationSettings(), pruneSet: PruneSetInfo? = nil,
                    modelSHA256: String? = nil, extraSettings: [String: SettingValue] = [:]) {
            self.method = method; self.role = role; self.dataset = dataset; self.generation = generation
            self.pruneSet = pruneSet; self.modelSHA256 = modelSHA256; self.extraSettings = extraSettings
        }
    }

    public static let generationsFile = "generations.jsonl"
    public static let judgementsFile = "judgements.jsonl"
    public static let timingFile = "timing.json"

    public let model: LanguageModel
    public let ablation: NeuronSet?
    public let config: Config

    public init(model: LanguageModel, ablation: NeuronSet?, config: Config) {
        self.model = model; self.ablation = ablation; self.config = config
    }

    public func run(prompts: [PromptRecord], judge: ResponseJudge, output: URL) throws -> SafetySummary {
        guard !prompts.isEmpty else { throw EvaluationError.invalidArgument(reason: "no prompts to evaluate") }
        let started = Date()
        try SafetyEvaluator.checkRunIdentity(runIdentity(prompts: prompts), folder: output)
        let quick = RefusalJudge()
        var gen = ResponseGenerator(model: model, ablation: ablation, settings: config.generation)
        gen.progressLabel = "eval \(config.dataset)"
        let log = output.appendingPathComponent(SafetyEvaluator.generationsFile)
        var stop: ((String) -> Bool)?
        if config.generation.stopAtRefusal {
            guard let rules = (judge as? RefusalResponseJudge)?.rules else {
                throw EvaluationError.invalidArgument(reason: "stopping at a refusal phrase needs the refusal judge, not \(judge.name)")
            }
            stop = { rules.containsRefusalPhrase($0, partial: true) }
        }
        let (records, timing) = try gen.run(prompts: prompts, log: log, provisional: { quick.verdict($0) }, stopWhen: stop)
        let judgements = try judge.judge(records.map { ($0.prompt, $0.response) })
        guard judgements.count == records.count else {
            throw EvaluationError.invalidArgument(reason: "judge \(judge.name) returned \(judgements.count) verdicts for \(records.count) responses")
        }
        let judged = zip(records, judgements).map { r, j -> GenerationRecord in var x = r; x.verdict = j.verdict; return x }
        // Rewritten in input order with the final verdicts (the appended file is in batch order).
        try GenerationLog.write(judged, to: log)
        try SafetyEvaluator.writeJudgements(judgements, to: output.appendingPathComponent(SafetyEvaluator.judgementsFile))
        var settings = config.extraSettings
        settings["max_tokens"] = .int(config.generation.maxNewTokens)
        settings["batch_size"] = .int(config.generation.batchSize)
        settings["decoding"] = .string("greedy")
        if config.generation.stopAtRefusal { settings["stop_at_refusal"] = .bool(true) }
        settings["chat_template"] = .string(model.chatTemplateSource)
        settings["prompts"] = .int(prompts.count)
        if let s = config.generation.system { settings["system"] = .string(s) }
        settings.merge(SafetyEvaluator.judgeStatistics(judgements)) { _, new in new }
        let summary = try SafetySummary(method: config.method, role: config.role, dataset: config.dataset, judge: judge.name,
                                        records: judged, settings: settings, modelSHA256: config.modelSHA256,
                                        pruneSet: config.pruneSet, wallSeconds: (Date().timeIntervalSince(started) * 10).rounded() / 10)
        try FileIO.writeAtomically(try encodeJSON(timing, path: output.path), to: output.appendingPathComponent(SafetyEvaluator.timingFile))
        try summary.write(to: output)
        return summary
    }

    public static let runFile = "run.json"

    /// Everything that decides the generations: a resumed run must match it, or stale responses would be
    /// mixed with new ones. The judge is not part of it (responses are re-judged on every run).
    public func runIdentity(prompts: [PromptRecord]) -> [String: String] {
        var id = ["model_sha256": config.modelSHA256 ?? "unknown", "dataset": config.dataset,
                  "max_tokens": String(config.generation.maxNewTokens), "batch_size": String(config.generation.batchSize),
                  "system": config.generation.system ?? "", "prune_set": config.pruneSet.map { "\($0.name) \($0.sha256 ?? "")" } ?? "none",
                  "prompts_sha256": SHA256.hex(prompts.map { "\($0.category ?? "")\u{1}\($0.prompt)" }.joined(separator: "\u{0}"))]
        if ablation != nil && config.pruneSet == nil { id["ablation"] = String(ablation?.count ?? 0) }
        if config.generation.stopAtRefusal { id["stop_at_refusal"] = "true" }
        return id
    }

    /// Writes run.json on the first run; later runs in the same folder must carry the same identity.
    static func checkRunIdentity(_ id: [String: String], folder: URL) throws {
        let url = folder.appendingPathComponent(runFile)
        if FileManager.default.fileExists(atPath: url.path) {
            let old = try decodeJSON([String: String].self, from: url)
            let diff = Set(old.keys).union(id.keys).filter { old[$0] != id[$0] }.sorted()
            guard diff.isEmpty else {
                throw EvaluationError.invalidArgument(reason: "\(folder.path) holds an evaluation with different settings (\(diff.joined(separator: ", "))); use a new --output folder")
            }
            return
        }
        try FileIO.writeAtomically(try encodeJSON(id, path: url.path), to: url)
    }

    /// Judge-specific aggregates for the summary's settings: mean rubric score, unparsed judge outputs,
    /// mean fluency NLL.
    public static func judgeStatistics(_ js: [Judgement]) -> [String: SettingValue] {
        var out: [String: SettingValue] = [:]
        let unparsed = js.filter(\.unparsed).count
        if unparsed > 0 { out["judge_unparsed"] = .int(unparsed) }
        let scores = js.compactMap(\.score)
        if !scores.isEmpty {
            out["rubric_mean_score"] = .double((scores.reduce(0, +) / Double(js.count) * 1e6).rounded() / 1e6)
            out["rubric_scored"] = .int(scores.count)
        }
        let nlls = js.compactMap(\.meanNLL).filter(\.isFinite)
        if !nlls.isEmpty { out["fluency_mean_nll"] = .double((nlls.reduce(0, +) / Double(nlls.count) * 1e6).rounded() / 1e6) }
        return out
    }

    static func writeJudgements(_ js: [Judgement], to url: URL) throws {
        let enc = JSONEncoder()
        enc.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        var data = Data()
        for j in js {
            do { data.append(try enc.encode(j)) } catch {
                throw EvaluationError.io(path: url.path, reason: "cannot encode judgement (\(error.localizedDescription))")
            }
            data.append(0x0A)
        }
        try FileIO.writeAtomically(data, to: url)
    }
}

/// A judged record as `safeneuron judge` writes it: the generation fields plus the judgement.
public struct JudgedRecord: Encodable {
    public var record: GenerationRecord
    public var judgement: Judgement
    public var judge: String

    public init(record: GenerationRecord, judgement: Judgement, judge: String) {
        self.record = record; self.judgement = judgement; self.judge = judge
    }

    enum K: String, CodingKey { case prompt, response, category, verdict, tokens, judge, reason, score, meanNLL = "mean_nll", unparsed }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: K.self)
        try c.encode(record.prompt, forKey: .prompt)
        try c.encode(record.response, forKey: .response)
        try c.encode(record.category, forKey: .category)
        try c.encode(judgement.verdict, forKey: .verdict)
        try c.encode(record.tokens, forKey: .tokens)
        try c.encode(judge, forKey: .judge)
        try c.encode(judgement.reason, forKey: .reason)
        try c.encode(judgement.score, forKey: .score)
        try c.encode(judgement.meanNLL, forKey: .meanNLL)
        try c.encode(judgement.unparsed, forKey: .unparsed)
    }

    /// Writes one JSON object per line, atomically. The file still reads as generations (extra keys are ignored).
    public static func write(_ rows: [JudgedRecord], to url: URL) throws {
        let enc = JSONEncoder()
        enc.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        var data = Data()
        for r in rows {
            do { data.append(try enc.encode(r)) } catch {
                throw EvaluationError.io(path: url.path, reason: "cannot encode record (\(error.localizedDescription))")
            }
            data.append(0x0A)
        }
        try FileIO.writeAtomically(data, to: url)
    }
}

extension PruneSetInfo {
    /// Report condition names of the neurons-file sets: union → "FULL(SN−)", es → "ES(SN−)", sas → "SAS(SN−)",
    /// topk → "TOPK(SN−)"; others upper-cased the same way.
    public static func conditionName(forSet set: String) -> String {
        switch set.lowercased() {
        case "union", "full": return "FULL(SN−)"
        default: return "\(set.uppercased())(SN−)"
        }
    }
}
