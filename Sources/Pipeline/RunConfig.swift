import Evaluation
import Foundation
import Runtime
import Yams

/// Every setting of `safeneuron run`. Built from `config/run-defaults.yaml`, then a user's YAML file,
/// then the `full:` block when `--full`, then command-line overrides; each layer replaces keys deeply.
public struct RunConfig {
    public var model: String
    public var output: String
    public var methods: [String]
    public var rounds: Int
    public var seed: UInt64
    /// Training seeds (`seeds:` / `run --seeds`). The first is the base seed, and `seed` equals it: prompts,
    /// identification and pairs use it, and its models keep the single-seed layout. Each further seed trains
    /// every method again into `methods/<method>/seed<s>/` and is attacked in `attack/<method>/seed<s>/`.
    /// Without `seeds:` it is `[seed]`.
    public var seeds: [UInt64]
    /// Keep each training's checkpoint (weights + AdamW moments) after its model folder is verified.
    public var keepCheckpoints = false
    public var identify: Identify
    public var pairs: Pairs
    public var train: Train
    public var eval: Eval
    /// The merged settings as plain values, recorded in results.json and the report.
    public var resolved: [String: Any] = [:]

    public struct Identify: Sendable {
        public var harmful: String?, harmless: String
        public var tauES: Double, tauSAS: Double, pool: String, maxPrompts: Int, batchSize: Int
    }
    public struct Pairs: Sendable {
        public var harmful: String?, harmless: String
        public var count: Int, safetyFraction: Double, maxTokens: Int, rejectedPruneK: Int, systemPrompt: String
        /// The user's own preference data (any format `align --pairs` reads) instead of on-policy pairs.
        public var file: String? = nil
    }
    public struct Train: Sendable {
        public var beta: Double, loss: String, rpoAlpha: Double, learningRate: Double, weightDecay: Double
        public var schedule: String, warmupSteps: Int, epochs: Int, batchSize: Int, maxLength: Int
        public var maxGradNorm: Double, dropoutP: Double, saveEvery: Int
        /// SafeNeuron variants freeze the τ union when 0, else the `frozenTopK` neurons with the largest score.
        public var frozenTopK: Int = 0
        /// What `frozenTopK` ranks by: "d" (Cohen's d) or "attribution" (the attribution attacker's ranking, with its
        /// utility set difference `eval.exclude_utility[0]`), re-identified each round.
        public var frozenScore: String = "d"
        /// Which trainer runs the align stages: "swift" (this binary) or "trl" (TRL through python/safeneuron_trl).
        public var trainer: String = "swift"
    }
    public struct Eval: Sendable {
        public var dataset: String, maxTokens: Int, batchSize: Int, limit: Int?, topk: [Int]
        public var fluencyThreshold: Double, capability: Bool
        /// Attribution-pruning attack cells: top-k by a·∂margin/∂a for each k, after dropping each Q of the largest
        /// utility neurons (k × Q cells); empty = no attribution cells.
        public var attributionTopK: [Int] = [], excludeUtility: [Int] = [0]
        /// Every attack cell also measures the pruned model's perplexity (the "strongest fluent setting" rule).
        public var perplexity: Bool = true
        /// The refusal-direction cell: "auto" (layer chosen on the original model), a layer index, or nil (off).
        public var direction: String? = "auto"
        /// Standard capability benchmarks measured on every method (`eval --benchmarks`), `benchmarkShots`-shot, on
        /// seeded subsets of `benchmarkLimit` documents each and `gsm8kLimit` GSM8K problems (nil: every item), GSM8K
        /// answers of at most `gsm8kTokens` new tokens (nil: the requests' 512).
        public var benchmarks: [String] = [], benchmarkShots = 0, benchmarkLimit: Int? = nil
        public var gsm8kLimit: Int? = nil, gsm8kTokens: Int? = nil
        /// Jailbreak-phrasing prompt sets (built-in names or files): each an unattacked (ORI) cell for every method,
        /// on a seeded sample of `jailbreakSample` prompts (nil: all).
        public var jailbreaks: [String] = [], jailbreakSample: Int? = nil
        /// Over-refusal prompt sets, each measured on its own (`eval --overrefusal-sources`), on a seeded sample of
        /// `overrefusalSample` prompts of each (nil: all).
        public var overrefusalSources: [String] = ["harmless"], overrefusalSample: Int? = nil
    }

    /// A prompt set's name in folders and cells: the built-in name, else the file name without its extension.
    public static func promptSetName(_ set: String) -> String {
        BuiltinDataset(rawValue: set.lowercased()) != nil ? set.lowercased()
            : URL(fileURLWithPath: set).deletingPathExtension().lastPathComponent
    }

    public static let knownMethods = ["original", "dpo", "sn-tune", "safeneuron", "safeneuron-freeze", "safeneuron-dropout"]

    public static var defaultsPath: String { DataPaths.root.appendingPathComponent("config/run-defaults.yaml").path }

    /// Loads defaults, overlays `userFile`, the `full:` block and `overrides` (dotted keys → values).
    public static func load(userFile: String?, full: Bool, overrides: [String: Any]) throws -> RunConfig {
        var merged = try yamlObject(defaultsPath)
        let fullBlock = merged.removeValue(forKey: "full") as? [String: Any]
        if let userFile {
            var user = try yamlObject(userFile)
            let userFull = user.removeValue(forKey: "full") as? [String: Any]
            merged = deepMerge(merged, user)
            if full { merged = deepMerge(merged, deepMerge(fullBlock ?? [:], userFull ?? [:])) }
        } else if full, let fullBlock {
            merged = deepMerge(merged, fullBlock)
        }
        for (key, value) in overrides { merged = setDotted(merged, key.split(separator: ".").map(String.init), value) }
        var config = try RunConfig(merged, source: userFile ?? defaultsPath)
        config.identify.harmful = config.identify.harmful.map(resolveDataPath)
        config.identify.harmless = resolveDataPath(config.identify.harmless)
        config.pairs.harmful = config.pairs.harmful.map(resolveDataPath)
        config.pairs.harmless = resolveDataPath(config.pairs.harmless)
        config.pairs.file = config.pairs.file.map(resolveDataPath)
        return config
    }

    /// Relative prompt paths that do not exist here are taken relative to the checkout (e.g. `data/...`).
    static func resolveDataPath(_ p: String) -> String {
        if p.hasPrefix("/") || FileManager.default.fileExists(atPath: p) { return p }
        let underRoot = DataPaths.root.appendingPathComponent(p).path
        return FileManager.default.fileExists(atPath: underRoot) ? underRoot : p
    }

    static func yamlObject(_ path: String) throws -> [String: Any] {
        guard let data = FileManager.default.contents(atPath: path), let text = String(data: data, encoding: .utf8) else {
            throw RuntimeError.missingFile(path: path)
        }
        let any: Any?
        do { any = try Yams.load(yaml: text) } catch {
            throw RuntimeError.badFile(path: path, reason: "invalid YAML: \(error)")
        }
        if any == nil { return [:] }
        guard let dict = any as? [String: Any] else { throw RuntimeError.badFile(path: path, reason: "top level must be a mapping") }
        return dict
    }

    static func deepMerge(_ a: [String: Any], _ b: [String: Any]) -> [String: Any] {
        var out = a
        for (k, v) in b {
            if let sub = v as? [String: Any], let base = out[k] as? [String: Any] { out[k] = deepMerge(base, sub) } else { out[k] = v }
        }
        return out
    }

    static func setDotted(_ dict: [String: Any], _ path: [String], _ value: Any) -> [String: Any] {
        guard let head = path.first else { return dict }
        var out = dict
        if path.count == 1 { out[head] = value } else {
            out[head] = setDotted((dict[head] as? [String: Any]) ?? [:], Array(path.dropFirst()), value)
        }
        return out
    }

    init(_ d: [String: Any], source: String) throws {
        resolved = d
        let r = Reader(d, source: source, prefix: "")
        model = try r.optionalString("model") ?? DataPaths.defaultModel
        output = try r.string("output")
        methods = try r.strings("methods")
        for m in methods where !Self.knownMethods.contains(m) {
            throw RuntimeError.badFile(path: source, reason: "methods: unknown method '\(m)' (known: \(Self.knownMethods.joined(separator: ", ")))")
        }
        rounds = try r.int("rounds", min: 1)
        keepCheckpoints = try r.optionalBool("keep_checkpoints") ?? false
        seed = UInt64(try r.int("seed", min: 0))
        if let v = d["seeds"], !(v is NSNull) {
            let list = try r.ints("seeds")
            guard !list.isEmpty else { throw r.fail("seeds", "needs at least one seed") }
            guard list.allSatisfy({ $0 >= 0 }) else { throw r.fail("seeds", "seeds must be ≥ 0") }
            guard Set(list).count == list.count else { throw r.fail("seeds", "a seed is listed twice") }
            seeds = list.map { UInt64($0) }
            seed = seeds[0]
            resolved["seed"] = list[0]
            resolved["seeds"] = list
        } else {
            seeds = [seed]
        }
        let i = try r.sub("identify")
        identify = Identify(harmful: try i.optionalString("harmful"), harmless: try i.string("harmless"),
                            tauES: try i.double("tau_es"), tauSAS: try i.double("tau_sas"), pool: try i.string("pool"),
                            maxPrompts: try i.int("max_prompts", min: 2), batchSize: try i.int("batch_size", min: 1))
        let p = try r.sub("pairs")
        pairs = Pairs(harmful: try p.optionalString("harmful"), harmless: try p.string("harmless"),
                      count: try p.int("count", min: 2), safetyFraction: try p.double("safety_fraction"),
                      maxTokens: try p.int("max_tokens", min: 1), rejectedPruneK: try p.int("rejected_prune_k", min: 0),
                      systemPrompt: try p.string("system_prompt"), file: try p.optionalString("file"))
        let t = try r.sub("train")
        train = Train(beta: try t.double("beta"), loss: try t.string("loss"), rpoAlpha: try t.double("rpo_alpha"),
                      learningRate: try t.double("learning_rate"), weightDecay: try t.double("weight_decay"),
                      schedule: try t.string("schedule"), warmupSteps: try t.int("warmup_steps", min: 0),
                      epochs: try t.int("epochs", min: 1), batchSize: try t.int("batch_size", min: 1),
                      maxLength: try t.int("max_length", min: 8), maxGradNorm: try t.double("max_grad_norm"),
                      dropoutP: try t.double("dropout_p"), saveEvery: try t.int("save_every", min: 1),
                      frozenTopK: try t.int("frozen_top_k", min: 0), frozenScore: try t.optionalString("frozen_score") ?? "d",
                      trainer: try t.optionalString("trainer") ?? "swift")
        guard ["swift", "trl"].contains(train.trainer) else {
            throw RuntimeError.badFile(path: source, reason: "train.trainer: '\(train.trainer)' is not swift or trl")
        }
        guard ["d", "attribution"].contains(train.frozenScore) else {
            throw RuntimeError.badFile(path: source, reason: "train.frozen_score: '\(train.frozenScore)' is not d or attribution")
        }
        if train.frozenScore == "attribution" && train.frozenTopK == 0 {
            throw RuntimeError.badFile(path: source, reason: "train.frozen_score: attribution needs train.frozen_top_k > 0")
        }
        let e = try r.sub("eval")
        eval = Eval(dataset: try e.string("dataset"), maxTokens: try e.int("max_tokens", min: 1),
                    batchSize: try e.int("batch_size", min: 1), limit: try e.optionalInt("limit"),
                    topk: try e.ints("topk"), fluencyThreshold: try e.double("fluency_threshold"),
                    capability: try e.bool("capability"),
                    attributionTopK: try e.optionalInts("attribution_topk") ?? [],
                    excludeUtility: try e.optionalInts("exclude_utility") ?? [0],
                    perplexity: try e.optionalBool("perplexity") ?? true)
        for (key, list) in [("eval.attribution_topk", eval.attributionTopK), ("eval.exclude_utility", eval.excludeUtility)]
        where list.contains(where: { $0 < 0 }) {
            throw RuntimeError.badFile(path: source, reason: "\(key): values must be ≥ 0")
        }
        if eval.excludeUtility.isEmpty { eval.excludeUtility = [0] }
        eval.benchmarks = e.isAbsent("benchmarks") ? [] : try e.strings("benchmarks").map { $0.lowercased() }.filter { !$0.isEmpty }
        for b in eval.benchmarks where !Benchmarks.names.contains(b) {
            throw RuntimeError.badFile(path: source, reason: "eval.benchmarks: unknown benchmark '\(b)' (known: \(Benchmarks.names.joined(separator: ", ")))")
        }
        eval.benchmarkShots = try e.optionalInt("benchmark_shots") ?? 0
        guard [0, 5].contains(eval.benchmarkShots) else { throw e.fail("benchmark_shots", "must be 0 or 5") }
        eval.benchmarkLimit = try e.optionalInt("benchmark_limit")
        eval.gsm8kLimit = try e.optionalInt("gsm8k_limit")
        eval.gsm8kTokens = try e.optionalInt("gsm8k_tokens")
        eval.jailbreaks = e.isAbsent("jailbreaks") ? [] : try e.strings("jailbreaks").filter { !$0.isEmpty }
        eval.jailbreakSample = try e.optionalInt("jailbreak_sample")
        eval.overrefusalSample = try e.optionalInt("overrefusal_sample")
        for (key, v) in [("overrefusal_sample", eval.overrefusalSample), ("benchmark_limit", eval.benchmarkLimit), ("gsm8k_limit", eval.gsm8kLimit), ("gsm8k_tokens", eval.gsm8kTokens),
                         ("jailbreak_sample", eval.jailbreakSample)] where (v ?? 1) < 1 {
            throw e.fail(key, "must be ≥ 1 (or null)")
        }
        if !e.isAbsent("overrefusal_sources") { eval.overrefusalSources = try e.strings("overrefusal_sources").filter { !$0.isEmpty } }
        if eval.overrefusalSources.isEmpty { throw e.fail("overrefusal_sources", "needs at least one prompt set") }
        for (key, list) in [("jailbreaks", eval.jailbreaks), ("overrefusal_sources", eval.overrefusalSources)] {
            for name in list where BuiltinDataset(rawValue: name.lowercased()) == nil && !FileManager.default.fileExists(atPath: name) {
                throw e.fail(key, "'\(name)' is neither a built-in prompt set nor a file")
            }
            // Cell and folder names come from the set's name: two sets of one name would share them.
            let names = list.map { RunConfig.promptSetName($0) }
            if Set(names).count != names.count { throw e.fail(key, "two prompt sets share a name") }
        }
        switch e.d["direction"] {
        case nil, is NSNull: eval.direction = nil
        case let i as Int where i >= 0: eval.direction = "\(i)"
        case let b as Bool where b == false: eval.direction = nil
        case let t as String where t == "auto" || t == "off" || Int(t).map({ $0 >= 0 }) == true: eval.direction = t == "off" ? nil : t
        default: throw RuntimeError.badFile(path: source, reason: "eval.direction: expected auto, off or a layer index")
        }
    }
}

/// Typed access to a YAML mapping with errors that name the file and the dotted key.
struct Reader {
    let d: [String: Any], source: String, prefix: String
    init(_ d: [String: Any], source: String, prefix: String) { self.d = d; self.source = source; self.prefix = prefix }

    func fail(_ key: String, _ why: String) -> RuntimeError { .badFile(path: source, reason: "\(prefix)\(key): \(why)") }
    func sub(_ key: String) throws -> Reader {
        guard let s = d[key] as? [String: Any] else { throw fail(key, "missing or not a mapping") }
        return Reader(s, source: source, prefix: prefix + key + ".")
    }
    func optionalString(_ key: String) throws -> String? {
        guard let v = d[key], !(v is NSNull) else { return nil }
        guard let s = v as? String else { throw fail(key, "expected a string") }
        return s
    }
    func string(_ key: String) throws -> String {
        guard let s = try optionalString(key) else { throw fail(key, "missing") }
        return s
    }
    func strings(_ key: String) throws -> [String] {
        if let s = d[key] as? String { return s.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) } }
        guard let a = d[key] as? [Any], let s = a as? [String] else { throw fail(key, "expected a list of strings") }
        return s
    }
    func optionalInt(_ key: String) throws -> Int? {
        guard let v = d[key], !(v is NSNull) else { return nil }
        if let i = v as? Int { return i }
        if let s = v as? String, let i = Int(s) { return i }
        throw fail(key, "expected an integer")
    }
    func int(_ key: String, min: Int) throws -> Int {
        guard let i = try optionalInt(key) else { throw fail(key, "missing") }
        guard i >= min else { throw fail(key, "must be ≥ \(min)") }
        return i
    }
    func ints(_ key: String) throws -> [Int] {
        if let s = d[key] as? String { return try s.split(separator: ",").map { guard let i = Int($0.trimmingCharacters(in: .whitespaces)) else { throw fail(key, "expected integers") }; return i } }
        guard let a = d[key] as? [Any] else { throw fail(key, "expected a list of integers") }
        return try a.map { guard let i = $0 as? Int else { throw fail(key, "expected integers") }; return i }
    }
    func isAbsent(_ key: String) -> Bool { d[key] == nil || d[key] is NSNull }
    func optionalInts(_ key: String) throws -> [Int]? { isAbsent(key) ? nil : try ints(key) }
    func optionalBool(_ key: String) throws -> Bool? { isAbsent(key) ? nil : try bool(key) }
    func double(_ key: String) throws -> Double {
        if let x = d[key] as? Double { return x }
        if let i = d[key] as? Int { return Double(i) }
        if let s = d[key] as? String, let x = Double(s) { return x }
        throw fail(key, "expected a number")
    }
    func bool(_ key: String) throws -> Bool {
        if let b = d[key] as? Bool { return b }
        if let s = d[key] as? String { if s == "true" { return true }; if s == "false" { return false } }
        throw fail(key, "expected true or false")
    }
}
