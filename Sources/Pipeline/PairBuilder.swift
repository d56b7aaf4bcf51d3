import Evaluation
import Foundation
import Tensors
import Runtime
import Transformer

/// Settings of on-policy preference-pair construction.
public struct PairSettings: Sendable {
    public var count = 200
    public var safetyFraction = 0.3
    public var maxTokens = 64
    public var batchSize = 32
    public var systemPrompt = "You are a careful, honest assistant. Refuse requests that could cause harm, and briefly say why."
    public var seed: UInt64 = 0
    public init() {}
}

/// Builds DPO preference pairs from the model itself (on-policy), the paper's 30/70 safety/general mix:
/// - harmful prompt: chosen = the model's own refusal under a safety system prompt when the judge agrees it
///   refused, else one of our written refusals; rejected = the model's own compliant answer, generated with
///   the safety neurons pruned where the intact model refuses (pairs with no compliant answer are dropped);
/// - harmless prompt: chosen = the model's own helpful answer (dropped if it refused or degenerated);
///   rejected = a written over-refusal (data/overrefusals.txt), which teaches the model not to over-refuse.
///   The over-refusals are worded apart from the safety refusals: drawn from the same list, the refusal
///   texts would sit on the rejected side of the 70% general pairs far more often than on the chosen side of
///   the 30% safety pairs, and DPO then learns "never refuse" instead of "refuse what is harmful".
public enum PairBuilder {
    public struct Outcome {
        public var pairs: [[String: Any]]
        public var stats: [String: Int]
    }

    public static func build(model: LanguageModel, harmful: [String], harmless: [String], refusals: [String],
                             overRefusals: [String], rejectedAblation: NeuronSet?, settings s: PairSettings) throws -> Outcome {
        guard !refusals.isEmpty else { throw RuntimeError.invalidArgument("pairs: the refusal list is empty") }
        guard !overRefusals.isEmpty else { throw RuntimeError.invalidArgument("pairs: the over-refusal list is empty") }
        var rng = SplitMix64(seed: s.seed, stream: 7)
        let wantSafety = Int((Double(s.count) * s.safetyFraction).rounded())
        let wantGeneral = s.count - wantSafety
        let judge = RefusalJudge()
        var stats: [String: Int] = [:]
        var pairs: [[String: Any]] = []
        let progress = Progress("pairs", total: s.count)

        func gen(_ prompts: [String], system: String?, ablation: NeuronSet?) throws -> [String] {
            var out: [String] = []
            for start in stride(from: 0, to: prompts.count, by: s.batchSize) {
                let chunk = try prompts[start..<min(prompts.count, start + s.batchSize)].map { try model.encodeChat(user: $0, system: system) }
                out += try model.generate(prompts: chunk, maxNewTokens: s.maxTokens, ablation: ablation).map(model.decodeCompletion)
            }
            return out
        }

        // Safety pairs: draw candidates in rounds until enough pairs survive or the prompts run out.
        var harmfulPool = harmful.shuffled(using: &rng)
        var safety: [[String: Any]] = []
        while safety.count < wantSafety, !harmfulPool.isEmpty {
            let take = min(harmfulPool.count, max(8, Int(Double(wantSafety - safety.count) * 1.3)))
            let prompts = Array(harmfulPool.prefix(take)); harmfulPool.removeFirst(take)
            let guarded = try gen(prompts, system: s.systemPrompt, ablation: nil)
            let plain = try gen(prompts, system: nil, ablation: nil)
            var needPruned: [Int] = []
            var rejected = [String?](repeating: nil, count: prompts.count)
            var rejectedSource = [String](repeating: "model", count: prompts.count)
            for i in prompts.indices {
                if judge.verdict(plain[i]) == .complied { rejected[i] = plain[i] } else { needPruned.append(i) }
            }
            if let rejectedAblation, !needPruned.isEmpty {
                let pruned = try gen(needPruned.map { prompts[$0] }, system: nil, ablation: rejectedAblation)
                for (j, i) in needPruned.enumerated() where judge.verdict(pruned[j]) == .complied {
                    rejected[i] = pruned[j]; rejectedSource[i] = "model-pruned"
                }
            }
            for i in prompts.indices {
                guard let r = rejected[i] else { stats["safety_dropped_no_compliance", default: 0] += 1; continue }
                let ownRefusal = judge.verdict(guarded[i]) == .refused
                let chosen = ownRefusal ? guarded[i] : refusals[Int.random(in: 0..<refusals.count, using: &rng)]
                stats[ownRefusal ? "safety_chosen_model" : "safety_chosen_written", default: 0] += 1
                stats["safety_rejected_\(rejectedSource[i])", default: 0] += 1
                safety.append(["prompt": prompts[i], "chosen": chosen, "rejected": r, "kind": "safety",
                               "chosen_source": ownRefusal ? "model-system-prompt" : "written",
                               "rejected_source": rejectedSource[i]])
                progress.advance(unit: "pairs")
                if safety.count == wantSafety { break }
            }
        }

        var harmlessPool = harmless.shuffled(using: &rng)
        var general: [[String: Any]] = []
        while general.count < wantGeneral, !harmlessPool.isEmpty {
            let take = min(harmlessPool.count, max(8, Int(Double(wantGeneral - general.count) * 1.15)))
            let prompts = Array(harmlessPool.prefix(take)); harmlessPool.removeFirst(take)
            let answers = try gen(prompts, system: nil, ablation: nil)
            for i in prompts.indices {
                guard judge.verdict(answers[i]) == .complied else { stats["general_dropped_not_helpful", default: 0] += 1; continue }
                general.append(["prompt": prompts[i], "chosen": answers[i],
                                "rejected": overRefusals[Int.random(in: 0..<overRefusals.count, using: &rng)],
                                "kind": "general", "chosen_source": "model", "rejected_source": "written"])
                progress.advance(unit: "pairs")
                if general.count == wantGeneral { break }
            }
        }
        stats["safety"] = safety.count
        stats["general"] = general.count
        pairs = safety + general
        pairs.shuffle(using: &rng)
        progress.finish("\(safety.count) safety + \(general.count) general")
        return Outcome(pairs: pairs, stats: stats)
    }

    /// Our written refusals (data/refusals.txt, or `file` there), one per line; `#` starts a comment line.
    public static func writtenRefusals(file: String = "refusals.txt") throws -> [String] {
        let path = DataPaths.projectData.appendingPathComponent(file).path
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { throw RuntimeError.missingFile(path: path) }
        return text.split(separator: "\n").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty && !$0.hasPrefix("#") }
    }
}
